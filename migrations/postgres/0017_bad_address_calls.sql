-- A customer whose email address bounced for good joins the call list, so
-- that staff ask for a working address: a new reason, 'bad_address'.
ALTER TABLE call_list DROP CONSTRAINT call_list_reason_check;
ALTER TABLE call_list ADD CONSTRAINT call_list_reason_check
    CHECK (reason IN ('callback', 'follow_up', 'regular', 'checkin', 'bad_address'));
