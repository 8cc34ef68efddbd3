-- Runs made for particular customers (an import changed a watched attribute):
-- only these customers are planned, audience and consent still apply.
CREATE TABLE run_targets (
    run_id BIGINT NOT NULL REFERENCES runs(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, customer_id)
);
