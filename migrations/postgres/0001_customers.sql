-- Customers and what we must remember about them.
-- Timestamps are always bound from Rust (TIMESTAMPTZ here), never
-- CURRENT_TIMESTAMP, so that text comparison orders them correctly.
CREATE TABLE customers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id TEXT UNIQUE,
    email TEXT UNIQUE,
    name TEXT,
    phone TEXT,
    locale TEXT,
    timezone TEXT,
    consent BOOLEAN NOT NULL DEFAULT FALSE,
    consent_at TIMESTAMPTZ,
    consent_source TEXT,
    phone_consent BOOLEAN NOT NULL DEFAULT FALSE,
    do_not_call BOOLEAN NOT NULL DEFAULT FALSE,
    is_business BOOLEAN NOT NULL DEFAULT FALSE,
    owner TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    customer_since DATE,
    birthday DATE,
    points BIGINT NOT NULL DEFAULT 0,
    tier TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    unsubscribed_at TIMESTAMPTZ,
    bad_address_at TIMESTAMPTZ,
    last_personal_contact_at TIMESTAMPTZ,
    forgotten_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Contact history and changes (consent, unsubscribes, imports, outcomes).
CREATE TABLE customer_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX customer_events_by_customer ON customer_events(customer_id, at);

-- Anonymous record of forgotten people: SHA-256 of the address or external id.
CREATE TABLE suppressions (
    key TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Small daemon-wide values (e.g. the generated token key).
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
