-- 问题学籍处理 and batch 升级/毕业 (issue 5, items 5 and 8), SQLite dialect. Keep tables and
-- columns identical to ../postgres/0007_problems_promotion.sql (a test compares them).

-- How a problem record ended: `confirmed` (佐证), `corrected` (变更), `deleted` (删除), or
-- `related_deleted` (the other record of a suspected duplicate was deleted). `status` runs
-- open → pending (an action waits for the authority) → resolved, or back to open on refusal.
ALTER TABLE problem_records ADD COLUMN resolution TEXT;
ALTER TABLE problem_records ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- One action of a school on a problem record (佐证 confirm / 变更 correct / 删除 delete), waiting
-- for the supervising authority's approval. The record as it was (`old_*`) stays here for the
-- archive, since a correction or a deletion changes the student row.
CREATE TABLE problem_actions (
    id INTEGER PRIMARY KEY,
    problem_id BIGINT NOT NULL REFERENCES problem_records (id),
    student_id BIGINT NOT NULL REFERENCES students (id),
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    new_name TEXT,
    new_id_type TEXT,
    new_id_number TEXT,
    old_name TEXT NOT NULL,
    old_id_type TEXT NOT NULL,
    old_id_number TEXT NOT NULL,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    authority_region TEXT NOT NULL REFERENCES authorities (region_code),
    requested_by BIGINT NOT NULL REFERENCES users (id),
    requested_at TIMESTAMP NOT NULL,
    decided_by BIGINT REFERENCES users (id),
    decided_at TIMESTAMP,
    opinion TEXT
);
CREATE INDEX problem_actions_problem ON problem_actions (problem_id, id);
CREATE INDEX problem_actions_student ON problem_actions (student_id, id);
CREATE INDEX problem_actions_authority ON problem_actions (authority_region, status, id);

CREATE TABLE problem_evidence (
    id INTEGER PRIMARY KEY,
    action_id BIGINT NOT NULL REFERENCES problem_actions (id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BLOB NOT NULL,
    uploaded_at TIMESTAMP NOT NULL
);
CREATE INDEX problem_evidence_action ON problem_evidence (action_id);

-- 升级/毕业 done per school and school year (the year of the switch): a second run of the same
-- year skips the school.
CREATE TABLE promotion_runs (
    school_id BIGINT NOT NULL REFERENCES schools (id),
    school_year BIGINT NOT NULL,
    promoted BIGINT NOT NULL,
    graduated BIGINT NOT NULL,
    run_at TIMESTAMP NOT NULL,
    run_by TEXT NOT NULL,
    PRIMARY KEY (school_id, school_year)
);
