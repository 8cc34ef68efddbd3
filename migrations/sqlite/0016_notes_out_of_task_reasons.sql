-- Follow-up tasks (and call list entries) used to carry the staff note in their reason
-- ("needs help (call by jonas): <note>", "callback agreed: <note>"), where it
-- showed on every page and digest listing the task. The note stays on the
-- task it was written for; the reason keeps only what it says itself.
UPDATE tasks SET reason = 'callback agreed'
 WHERE reason LIKE 'callback agreed: %';
UPDATE tasks SET reason = substr(reason, 1, instr(reason, '): '))
 WHERE kind = 'follow_up' AND reason LIKE 'needs help (call by %): %';
-- The same for a follow-up that waits on the call list.
UPDATE call_list SET detail = substr(detail, 1, instr(detail, '): '))
 WHERE reason = 'follow_up' AND detail LIKE 'needs help (call by %): %';
