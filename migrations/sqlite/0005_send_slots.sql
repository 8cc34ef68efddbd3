-- The send-rate window (mail.rate_per_minute): one row per send slot handed
-- out in the last minute or reserved ahead, numbered in the order handed out
-- (the slot `limit` places back is then a key lookup). In the database, not
-- in memory, so that a restarted daemon does not start a fresh minute.
CREATE TABLE send_slots (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE INDEX send_slots_by_time ON send_slots (at);
