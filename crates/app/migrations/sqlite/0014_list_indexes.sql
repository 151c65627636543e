-- Work lists at province scale (issue 6): the steps escalated to an authority, found by index
-- instead of a scan of every step.
CREATE INDEX transfer_steps_escalated ON transfer_steps (escalated_to, decision) WHERE escalated_to IS NOT NULL;

-- (PostgreSQL adds a text_pattern_ops index on students.name here; SQLite's BINARY collation
-- lets the name index serve a prefix as a range.)
SELECT 1;

-- The open transfers only (a few percent of all): the 督办 dashboard and the deadline run read
-- these, by a WHERE that repeats this status list word for word.
CREATE INDEX transfers_open ON transfers (current_step, id) WHERE status IN ('in_school_review','in_authority_review','out_school_review','out_authority_review');
