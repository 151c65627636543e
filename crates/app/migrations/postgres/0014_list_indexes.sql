-- Work lists at province scale (issue 6): the steps escalated to an authority, found by index
-- instead of a scan of every step.
CREATE INDEX transfer_steps_escalated ON transfer_steps (escalated_to, decision) WHERE escalated_to IS NOT NULL;

-- Student lists by name prefix (`LIKE '王%'`): usable whatever the database's collation.
CREATE INDEX students_name_pattern ON students (name text_pattern_ops);
