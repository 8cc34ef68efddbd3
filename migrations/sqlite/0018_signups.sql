-- Sign-ups by double opt-in: a request from a form (`/s`) waits here until
-- its person confirms it by the link in the confirmation email (`/c/…`).
-- A confirmed request stays as the record of the consent: when it was asked
-- for and confirmed, which text (the templates' fingerprint) and which kinds
-- of email were agreed to. Unconfirmed requests are deleted after 7 days.
CREATE TABLE signups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,                -- lower-cased; '' once its customer is forgotten
    name TEXT,
    locale TEXT NOT NULL,
    kinds TEXT NOT NULL,                -- campaign kinds agreed to, comma-separated
    text_fingerprint TEXT NOT NULL,     -- SHA-256 of the form's and the email's templates
    requested_at TEXT NOT NULL,
    confirmed_at TEXT,
    customer_id BIGINT REFERENCES customers(id)
);
CREATE INDEX signups_by_email ON signups(email, requested_at);
CREATE INDEX signups_by_customer ON signups(customer_id);
