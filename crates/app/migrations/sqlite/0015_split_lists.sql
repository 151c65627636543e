-- Province-wide lists at a million transfers (issue 6): the transfer query splits "received or
-- sent by the region" into two disjoint halves and counts each from one index without reading
-- rows (transfer_list.rs, `Split`); these are the indexes the halves use.
DROP INDEX transfers_from_region;
CREATE INDEX transfers_from_region ON transfers (from_region, to_region, id);
CREATE INDEX transfers_status_to ON transfers (status, to_region, from_region);
CREATE INDEX transfers_status_from ON transfers (status, from_region, to_region);
CREATE INDEX transfers_created ON transfers (created_at, to_region, from_region, kind, status);
CREATE INDEX transfers_name ON transfers (student_name, to_region, from_region);
CREATE INDEX transfers_student_no ON transfers (student_no);

-- Students by name prefix within a region: counted from the index alone.
DROP INDEX students_name;
CREATE INDEX students_name ON students (name, region_code, school_id);

-- The 督办 dashboard of a county or province: the waiting steps found by the waiting party's
-- region (the school's region, or the authority's own code), kept on the step when it is filed.
ALTER TABLE transfer_steps ADD COLUMN party_region TEXT;
UPDATE transfer_steps SET party_region = CASE WHEN party_kind = 'school'
    THEN (SELECT region_code FROM schools WHERE schools.code = transfer_steps.party_code)
    ELSE party_code END;
CREATE INDEX transfer_steps_open ON transfer_steps (party_region, due_date, party_kind, party_code, escalated_to, transfer_id, idx, code, decision)
    WHERE decision IS NULL AND due_date IS NOT NULL;
