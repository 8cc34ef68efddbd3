-- Every state, kind and outcome column accepts only the names the code
-- knows, each under a named constraint (the same names as on PostgreSQL).
-- The sets hold every name any release has written.
--
-- SQLite cannot add a constraint to a table: runs, messages and tasks are
-- rebuilt the documented way (new table, copy, drop, rename, indexes).
-- Other tables reference runs and tasks, so `Store::migrate` runs the
-- migrations with foreign keys off, as that way requires. The ids are kept,
-- so every reference still holds, and so is each AUTOINCREMENT counter (the
-- new table takes the old one's row in sqlite_sequence): the id of a
-- deleted row is not given out again.

CREATE TABLE runs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    rule_kind TEXT NOT NULL,
    occurrence TEXT NOT NULL,
    trigger TEXT NOT NULL,              -- 'schedule' | 'catch_up' | 'manual' | 'anniversary' | 'attribute_change'
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    template_hash TEXT,
    approval_deadline TEXT,
    decided_by TEXT,
    decided_at TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    held_since TEXT,
    stale_since BIGINT,
    stopped_by TEXT,
    stopped_at TEXT,
    UNIQUE (rule_id, occurrence),
    CONSTRAINT runs_state_known CHECK (state IN ('planning', 'awaiting_approval', 'sending',
        'done', 'cancelled', 'expired', 'skipped', 'stopped')),
    CONSTRAINT runs_rule_kind_known CHECK (rule_kind IN ('campaign', 'checkin'))
);
INSERT INTO runs_new (id, rule_id, rule_kind, occurrence, trigger, state, detail, template_hash,
    approval_deadline, decided_by, decided_at, lease_owner, lease_until, created_at, updated_at,
    held_since, stale_since, stopped_by, stopped_at)
SELECT id, rule_id, rule_kind, occurrence, trigger, state, detail, template_hash,
    approval_deadline, decided_by, decided_at, lease_owner, lease_until, created_at, updated_at,
    held_since, stale_since, stopped_by, stopped_at
FROM runs;
DELETE FROM sqlite_sequence WHERE name = 'runs_new';
UPDATE sqlite_sequence SET name = 'runs_new' WHERE name = 'runs';
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_by_state ON runs(state);

CREATE TABLE messages_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    state TEXT NOT NULL,
    reason TEXT,                        -- suppression reason or failure
    smtp_reply TEXT,
    message_id TEXT NOT NULL,
    not_before TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at TEXT,
    claimed_by TEXT,
    claimed_until TEXT,
    voucher_code TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (run_id, customer_id),
    CONSTRAINT messages_state_known CHECK (state IN ('planned', 'sending', 'sent', 'failed',
        'suppressed', 'unknown'))
);
INSERT INTO messages_new (id, run_id, customer_id, state, reason, smtp_reply, message_id,
    not_before, attempts, first_attempt_at, claimed_by, claimed_until, voucher_code, created_at,
    updated_at, sent_at)
SELECT id, run_id, customer_id, state, reason, smtp_reply, message_id,
    not_before, attempts, first_attempt_at, claimed_by, claimed_until, voucher_code, created_at,
    updated_at, sent_at
FROM messages;
DELETE FROM sqlite_sequence WHERE name = 'messages_new';
UPDATE sqlite_sequence SET name = 'messages_new' WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_due ON messages(state, not_before);
CREATE INDEX messages_by_customer ON messages(customer_id, created_at);
CREATE INDEX messages_claimable ON messages (run_id, not_before, id) WHERE state = 'planned';

CREATE TABLE tasks_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    run_id BIGINT REFERENCES runs(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    staff_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    due_on TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    note TEXT,
    outcome_at TEXT,
    escalated_at TEXT,
    parent_id BIGINT REFERENCES tasks(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    owner_id TEXT NOT NULL DEFAULT '',
    agreed_on TEXT,
    UNIQUE (run_id, customer_id),
    CONSTRAINT tasks_kind_known CHECK (kind IN ('call', 'callback', 'follow_up')),
    CONSTRAINT tasks_state_known CHECK (state IN ('open', 'done', 'expired', 'returned')),
    CONSTRAINT tasks_outcome_known CHECK (outcome IN ('reached', 'not_reached', 'callback',
        'needs_help', 'do_not_call'))
);
INSERT INTO tasks_new (id, rule_id, run_id, customer_id, staff_id, kind, state, reason, due_on,
    attempts, outcome, note, outcome_at, escalated_at, parent_id, created_at, updated_at,
    owner_id, agreed_on)
SELECT id, rule_id, run_id, customer_id, staff_id, kind, state, reason, due_on,
    attempts, outcome, note, outcome_at, escalated_at, parent_id, created_at, updated_at,
    owner_id, agreed_on
FROM tasks;
DELETE FROM sqlite_sequence WHERE name = 'tasks_new';
UPDATE sqlite_sequence SET name = 'tasks_new' WHERE name = 'tasks';
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_by_staff ON tasks(staff_id, state, due_on);
CREATE UNIQUE INDEX tasks_one_open_call ON tasks(customer_id)
    WHERE state = 'open' AND kind IN ('call', 'callback');
