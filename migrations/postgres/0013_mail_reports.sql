-- Bounces and complaints that came back by email, and the ones ignored (a
-- delay notice, a forged tag): the history behind a suppressed address and
-- the counts in /metrics.
CREATE TABLE mail_reports (
    id BIGSERIAL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('permanent', 'temporary', 'complaint', 'ignored')),
    customer_id BIGINT REFERENCES customers(id),
    message_id BIGINT,
    status TEXT,
    detail TEXT NOT NULL,
    -- SHA-256 of the whole email: one read acts once.
    digest TEXT NOT NULL UNIQUE
);
CREATE INDEX mail_reports_by_customer ON mail_reports(customer_id, kind, received_at);
