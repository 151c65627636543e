-- The 督办 dashboard's overdue list of a province or the nation (issue 6): the waiting steps in
-- due-date order, so that the 300 longest overdue are the first entries of one range instead of
-- a sort of every waiting step of the region (31,000 overdue of 66,000 waiting in a province of
-- 10 million students: 35 ms of the dashboard's time). A city's or county's list keeps reading
-- its region's range of `transfer_steps_waiting`, which is smaller there.
CREATE INDEX transfer_steps_waiting_due ON transfer_steps (due_date, transfer_id, party_region, party_kind, party_code, code, escalated_to)
    WHERE waiting = 1;
