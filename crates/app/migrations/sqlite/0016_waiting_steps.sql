-- The 督办 dashboard of a province (issue 6): the step a transfer waits on is marked `waiting = 1`
-- (set when the step starts, cleared when it is decided or the transfer is withdrawn or closed),
-- so the dashboard counts a region's waiting steps from one partial index alone, in the order
-- it groups them, without looking up each step's transfer (60,000 lookups for a province).
ALTER TABLE transfer_steps ADD COLUMN waiting INTEGER;
UPDATE transfer_steps SET waiting = 1 WHERE decision IS NULL AND due_date IS NOT NULL AND EXISTS (
    SELECT 1 FROM transfers t WHERE t.id = transfer_steps.transfer_id AND t.current_step = transfer_steps.idx
    AND t.status IN ('in_school_review','in_authority_review','out_school_review','out_authority_review'));
DROP INDEX transfer_steps_open;
CREATE INDEX transfer_steps_waiting ON transfer_steps (party_region, party_kind, party_code, escalated_to, due_date, transfer_id, code)
    WHERE waiting = 1;
