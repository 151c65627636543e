-- 逾期 lists of a county or province (issue 6): the due date of the step a transfer waits on,
-- kept on the transfer while it is under review (NULL otherwise), so that "overdue" is a range
-- of a small partial index per side (to_region / from_region first) instead of every open
-- transfer of the region looked up with its current step (0.8 s for a province at 10 million).
ALTER TABLE transfers ADD COLUMN waiting_due DATE;
UPDATE transfers SET waiting_due = (SELECT s.due_date FROM transfer_steps s
    WHERE s.transfer_id = transfers.id AND s.waiting = 1)
    WHERE status IN ('in_school_review','in_authority_review','out_school_review','out_authority_review');
CREATE INDEX transfers_waiting_to ON transfers (to_region, waiting_due, from_region) WHERE waiting_due IS NOT NULL;
CREATE INDEX transfers_waiting_from ON transfers (from_region, waiting_due, to_region) WHERE waiting_due IS NOT NULL;
