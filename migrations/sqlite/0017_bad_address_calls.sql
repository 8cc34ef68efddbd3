-- A customer whose email address bounced for good joins the call list, so
-- that staff ask for a working address: a new reason, 'bad_address'.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE call_list_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    rule_id TEXT NOT NULL,
    run_id BIGINT REFERENCES runs(id),
    reason TEXT NOT NULL CHECK (reason IN ('callback', 'follow_up', 'regular', 'checkin', 'bad_address')),
    staff_id TEXT,                      -- who should take it (a follow-up's manager)
    avoid_staff_id TEXT,                -- who left it unmade: a colleague takes it
    not_before TEXT,                    -- not planned before this day
    attempts INTEGER NOT NULL DEFAULT 0,
    from_task_id BIGINT REFERENCES tasks(id), -- the unmade call it came back from
    detail TEXT,                        -- why the call is due, if not the rule's reason
    place BIGINT,                       -- place in line kept from an earlier entry (else id)
    state TEXT NOT NULL CHECK (state IN ('waiting', 'planned', 'dropped')),
    task_id BIGINT REFERENCES tasks(id),
    drop_reason TEXT CHECK (drop_reason IN ('do_not_call', 'no_phone_consent', 'no_phone',
        'recent_contact', 'open_call', 'forgotten', 'rule_removed')),
    added_at TEXT NOT NULL,
    left_at TEXT,
    CHECK ((state = 'waiting') = (left_at IS NULL)),
    CHECK ((state = 'planned') = (task_id IS NOT NULL)),
    CHECK ((state = 'dropped') = (drop_reason IS NOT NULL))
);
INSERT INTO call_list_new (id, customer_id, rule_id, run_id, reason, staff_id, avoid_staff_id,
    not_before, attempts, from_task_id, detail, place, state, task_id, drop_reason, added_at, left_at)
SELECT id, customer_id, rule_id, run_id, reason, staff_id, avoid_staff_id,
    not_before, attempts, from_task_id, detail, place, state, task_id, drop_reason, added_at, left_at
FROM call_list;
DROP TABLE call_list;
ALTER TABLE call_list_new RENAME TO call_list;
CREATE UNIQUE INDEX call_list_one_waiting ON call_list(customer_id) WHERE state = 'waiting';
CREATE INDEX call_list_by_run ON call_list(run_id);
