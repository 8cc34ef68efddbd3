-- Customers and what we must remember about them.
-- Timestamps are always bound from Rust (RFC 3339 text in SQLite), never
-- CURRENT_TIMESTAMP, so that text comparison orders them correctly.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT UNIQUE,
    email TEXT UNIQUE,
    name TEXT,
    phone TEXT,
    locale TEXT,
    timezone TEXT,
    consent BOOLEAN NOT NULL DEFAULT FALSE,
    consent_at TEXT,
    consent_source TEXT,
    phone_consent BOOLEAN NOT NULL DEFAULT FALSE,
    do_not_call BOOLEAN NOT NULL DEFAULT FALSE,
    is_business BOOLEAN NOT NULL DEFAULT FALSE,
    owner TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    customer_since TEXT,
    birthday TEXT,
    points BIGINT NOT NULL DEFAULT 0,
    tier TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    unsubscribed_at TEXT,
    bad_address_at TEXT,
    last_personal_contact_at TEXT,
    forgotten_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Contact history and changes (consent, unsubscribes, imports, outcomes).
CREATE TABLE customer_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX customer_events_by_customer ON customer_events(customer_id, at);

-- Anonymous record of forgotten people: SHA-256 of the address or external id.
CREATE TABLE suppressions (
    key TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Small daemon-wide values (e.g. the generated token key).
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
