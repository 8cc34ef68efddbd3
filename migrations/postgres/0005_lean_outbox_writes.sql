-- Planning a large run writes one outbox row per customer; these make each
-- row cheaper to write on PostgreSQL (benches/scale.sh).
--
-- No foreign keys on messages: each checked row takes a row lock on its run
-- and its customer, a third of the cost of writing a million rows. Rows are
-- written only by planning, from runs and customers it has just read, and
-- neither runs nor customers are ever deleted (forgetting a customer blanks
-- the row). SQLite keeps its foreign keys: there a check is a rowid lookup.
ALTER TABLE messages
    DROP CONSTRAINT messages_run_id_fkey,
    DROP CONSTRAINT messages_customer_id_fkey;

-- messages_due indexed every row by (state, not_before); claims use
-- messages_claimable. What else looks rows up by state looks for the few
-- that are in flight or went wrong.
DROP INDEX messages_due;
CREATE INDEX messages_unsettled ON messages (run_id, state)
    WHERE state IN ('sending', 'failed', 'unknown');
