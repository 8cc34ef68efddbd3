-- Runs of campaigns and check-in rules. (rule_id, occurrence) is unique, so
-- a schedule occurrence is recorded once, whichever daemon sees it first.
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    rule_kind TEXT NOT NULL,            -- 'campaign' | 'checkin'
    occurrence TEXT NOT NULL,
    trigger TEXT NOT NULL,              -- 'schedule' | 'catch_up' | 'manual' | 'anniversary' | 'attribute_change'
    state TEXT NOT NULL,                -- 'planning' | 'awaiting_approval' | 'sending' | 'done' | 'cancelled' | 'expired' | 'skipped'
    detail TEXT NOT NULL DEFAULT '',
    template_hash TEXT,
    approval_deadline TEXT,
    decided_by TEXT,
    decided_at TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (rule_id, occurrence)
);
CREATE INDEX runs_by_state ON runs(state);

-- The outbox: one row per (run, customer), written before anything is sent.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    state TEXT NOT NULL,                -- 'planned' | 'sending' | 'sent' | 'failed' | 'suppressed' | 'unknown'
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
    UNIQUE (run_id, customer_id)
);
CREATE INDEX messages_due ON messages(state, not_before);
CREATE INDEX messages_by_customer ON messages(customer_id, created_at);

CREATE TABLE voucher_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id TEXT NOT NULL,
    code TEXT NOT NULL,
    customer_id BIGINT REFERENCES customers(id),
    assigned_at TEXT,
    expires_on TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (pool_id, code)
);
CREATE INDEX voucher_codes_free ON voucher_codes(pool_id, customer_id);

-- Call tasks for staff. At most one open call task per customer.
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    run_id BIGINT REFERENCES runs(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    staff_id TEXT NOT NULL,
    kind TEXT NOT NULL,                 -- 'call' | 'follow_up'
    state TEXT NOT NULL,                -- 'open' | 'done' | 'expired'
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
    UNIQUE (run_id, customer_id)
);
CREATE UNIQUE INDEX tasks_one_open_call ON tasks(customer_id) WHERE state = 'open' AND kind = 'call';
CREATE INDEX tasks_by_staff ON tasks(staff_id, state, due_on);

-- Customers a check-in rule matched but did not suggest a call for, and why.
CREATE TABLE checkin_skips (
    run_id BIGINT NOT NULL REFERENCES runs(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, customer_id)
);

-- One digest per staff member and day, whichever daemon sends it.
CREATE TABLE digests (
    staff_id TEXT NOT NULL,
    day TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    tasks INTEGER NOT NULL,
    PRIMARY KEY (staff_id, day)
);

-- Notices sent to admins once (e.g. a voucher pool ran dry).
CREATE TABLE notices (
    key TEXT PRIMARY KEY,
    sent_at TEXT NOT NULL
);
