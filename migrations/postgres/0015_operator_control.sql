-- Operator control from the command line: pausing, stopping, absences.

-- What holds email to customers: everything (scope '*', `outreach pause`) or
-- one campaign or check-in rule (its id, `outreach campaigns pause`). A hold
-- with `until_at` ends by itself at that instant (the start of the day given).
CREATE TABLE holds (
    scope TEXT PRIMARY KEY,
    until_at TIMESTAMPTZ,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- held_since: a sending run whose messages wait for a hold to end, since when.
-- stale_since: a run held for approval because its text is the same as in that run.
-- stopped_by/stopped_at: who stopped a run (`outreach runs stop`), and when.
ALTER TABLE runs ADD COLUMN held_since TIMESTAMPTZ;
ALTER TABLE runs ADD COLUMN stale_since BIGINT;
ALTER TABLE runs ADD COLUMN stopped_by TEXT;
ALTER TABLE runs ADD COLUMN stopped_at TIMESTAMPTZ;

-- Absences recorded with `outreach staff away`, merged with those in the config.
CREATE TABLE staff_absences (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id TEXT NOT NULL,
    from_on DATE NOT NULL,
    to_on DATE NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX staff_absences_by_staff ON staff_absences(staff_id, to_on);

-- A code given for one occasion (a customer's birthday in one year, by one
-- campaign): at most one per customer and occasion, whichever run gets there
-- first. run_id: the run it was given for (a resumed plan finds it again).
ALTER TABLE voucher_codes ADD COLUMN occasion TEXT;
ALTER TABLE voucher_codes ADD COLUMN run_id BIGINT;
CREATE UNIQUE INDEX voucher_codes_one_per_occasion
    ON voucher_codes(pool_id, customer_id, occasion) WHERE occasion IS NOT NULL;
