-- Work lists at province scale (issue 6): the steps escalated to an authority, found by index
-- instead of a scan of every step.
CREATE INDEX transfer_steps_escalated ON transfer_steps (escalated_to, decision) WHERE escalated_to IS NOT NULL;

-- (PostgreSQL adds a text_pattern_ops index on students.name here; SQLite's BINARY collation
-- lets the name index serve a prefix as a range.)
SELECT 1;
