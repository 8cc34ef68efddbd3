-- Every state, kind and outcome column accepts only the names the code
-- knows, each under a named constraint (the same names as on SQLite). The
-- sets hold every name any release has written.
ALTER TABLE runs ADD CONSTRAINT runs_state_known CHECK (state IN ('planning', 'awaiting_approval',
    'sending', 'done', 'cancelled', 'expired', 'skipped', 'stopped'));
ALTER TABLE runs ADD CONSTRAINT runs_rule_kind_known CHECK (rule_kind IN ('campaign', 'checkin'));
ALTER TABLE messages ADD CONSTRAINT messages_state_known CHECK (state IN ('planned', 'sending',
    'sent', 'failed', 'suppressed', 'unknown'));
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_known CHECK (kind IN ('call', 'callback', 'follow_up'));
ALTER TABLE tasks ADD CONSTRAINT tasks_state_known CHECK (state IN ('open', 'done', 'expired',
    'returned'));
ALTER TABLE tasks ADD CONSTRAINT tasks_outcome_known CHECK (outcome IN ('reached', 'not_reached',
    'callback', 'needs_help', 'do_not_call'));
