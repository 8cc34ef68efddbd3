-- How customers are addressed (the greeting of an email), and objections
-- kept with who recorded them, how and when.
ALTER TABLE customers ADD COLUMN salutation TEXT CHECK (salutation IN ('ms', 'mr', 'family', 'company'));
ALTER TABLE customers ADD COLUMN first_name TEXT;
ALTER TABLE customers ADD COLUMN last_name TEXT;
ALTER TABLE customers ADD COLUMN company TEXT;
ALTER TABLE customers ADD COLUMN note TEXT;

-- "No more emails" (all of them, or one campaign kind) or "do not call me".
-- The customer row keeps the effect (unsubscribed_at, do_not_call); this
-- table keeps the record, so that an import saying "yes" cannot undo it:
-- only a consent dated after `at` lifts it (lifted_at, lifted_because).
CREATE TABLE objections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    channel TEXT NOT NULL CHECK (channel IN ('email', 'phone')),
    -- a campaign kind (email only); NULL: every email / every call
    kind TEXT CHECK (kind IS NULL OR channel = 'email'),
    at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    source TEXT NOT NULL,
    note TEXT,
    lifted_at TEXT,
    lifted_because TEXT
);
CREATE INDEX objections_by_customer ON objections(customer_id);
CREATE INDEX objections_active_by_kind ON objections(kind, customer_id) WHERE lifted_at IS NULL;

-- Objections made before this table existed: unsubscribes came from the
-- link in an email; do-not-call from an import or a call outcome, at a time
-- no later than the row's last change.
INSERT INTO objections (customer_id, channel, at, recorded_by, source)
SELECT id, 'email', unsubscribed_at, 'the customer',
       COALESCE((SELECT e.detail FROM customer_events e
                 WHERE e.customer_id = customers.id AND e.kind = 'unsubscribed'
                 ORDER BY e.at DESC, e.id DESC LIMIT 1), 'unsubscribe link')
FROM customers WHERE unsubscribed_at IS NOT NULL AND forgotten_at IS NULL;
INSERT INTO objections (customer_id, channel, at, recorded_by, source)
SELECT id, 'phone', updated_at, 'unknown', 'recorded before objections were kept (import or call outcome)'
FROM customers WHERE do_not_call AND forgotten_at IS NULL;
