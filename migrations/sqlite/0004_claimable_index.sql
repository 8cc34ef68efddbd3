-- Claims read one run's due rows in order; this keeps each claim cheap
-- however large the run is.
CREATE INDEX messages_claimable ON messages (run_id, not_before, id) WHERE state = 'planned';
