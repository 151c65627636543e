-- 处分 (issue 4: "none while under a sanction"), sqlite dialect. Keep tables and columns identical to
-- the other dialect's 0005_sanctions.sql (a test compares them).

-- A sanction recorded by the school that decided it. `ends_on` is its last day in force; revoking
-- (解除处分) ends it early and keeps the row, so the record's history stays whole.
CREATE TABLE sanctions (
    id INTEGER PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES students (id),
    school_id BIGINT NOT NULL REFERENCES schools (id),
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_on DATE NOT NULL,
    ends_on DATE NOT NULL,
    recorded_by BIGINT NOT NULL REFERENCES users (id),
    recorded_at TIMESTAMP NOT NULL,
    revoked_by BIGINT REFERENCES users (id),
    revoked_at TIMESTAMP,
    revoke_reason TEXT
);
CREATE INDEX sanctions_student ON sanctions (student_id, ends_on);
