-- Check-ins keep their promises: a rolling call list instead of call tasks
-- planned weeks ahead, and callbacks that hold their day and their owner.

-- Who a call belongs to: the staff member it was planned for or who agreed
-- the callback. It stays when a colleague covers an absence (staff_id).
ALTER TABLE tasks ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
-- An agreed callback's day, as agreed with the customer.
ALTER TABLE tasks ADD COLUMN agreed_on DATE;
UPDATE tasks SET owner_id = staff_id;
-- Callbacks used to be stored as 'call' tasks whose parent ended 'callback'.
UPDATE tasks SET kind = 'callback', agreed_on = due_on
 WHERE kind = 'call' AND parent_id IN (SELECT id FROM tasks WHERE outcome = 'callback');
-- kind: 'call' | 'callback' | 'follow_up'; state: 'open' | 'done' | 'expired' | 'returned'
DROP INDEX tasks_one_open_call;
CREATE UNIQUE INDEX tasks_one_open_call ON tasks(customer_id)
    WHERE state = 'open' AND kind IN ('call', 'callback');

-- The call list: customers waiting for a call. A check-in run puts them here;
-- each working day every staff member's list is filled from it, within their
-- capacity. An entry leaves it planned (as a task) or dropped (with a reason).
CREATE TABLE call_list (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    rule_id TEXT NOT NULL,
    run_id BIGINT REFERENCES runs(id),
    reason TEXT NOT NULL CHECK (reason IN ('callback', 'follow_up', 'regular', 'checkin')),
    staff_id TEXT,                      -- who should take it (a follow-up's manager)
    avoid_staff_id TEXT,                -- who left it unmade: a colleague takes it
    not_before DATE,                    -- not planned before this day
    attempts INTEGER NOT NULL DEFAULT 0,
    from_task_id BIGINT REFERENCES tasks(id), -- the unmade call it came back from
    detail TEXT,                        -- why the call is due, if not the rule's reason
    place BIGINT,                       -- place in line kept from an earlier entry (else id)
    state TEXT NOT NULL CHECK (state IN ('waiting', 'planned', 'dropped')),
    task_id BIGINT REFERENCES tasks(id),
    drop_reason TEXT CHECK (drop_reason IN ('do_not_call', 'no_phone_consent', 'no_phone',
        'recent_contact', 'open_call', 'forgotten', 'rule_removed')),
    added_at TIMESTAMPTZ NOT NULL,
    left_at TIMESTAMPTZ,
    CHECK ((state = 'waiting') = (left_at IS NULL)),
    CHECK ((state = 'planned') = (task_id IS NOT NULL)),
    CHECK ((state = 'dropped') = (drop_reason IS NOT NULL))
);
CREATE UNIQUE INDEX call_list_one_waiting ON call_list(customer_id) WHERE state = 'waiting';
CREATE INDEX call_list_by_run ON call_list(run_id);
