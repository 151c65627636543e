-- 学籍异动 and 关键数据变更 (issue 5 items 6–7), SQLite dialect. Keep tables and columns identical to
-- ../postgres/0006_changes.sql (a test compares them).

-- One change request (异动申请): `kind` is a status change (suspension, resumption, withdrawal,
-- dropout, death, abroad, return_from_abroad, repeat_grade, skip_grade, special_education) or
-- key_change; `status` pending_school → pending_authority → applied, or refused / withdrawn.
-- `payload` holds what the request asks (JSON: the 休学 period, the target grade and class, the new
-- key-data values); `before_json` what the record held when it was filed.
CREATE TABLE change_requests (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    student_id BIGINT NOT NULL REFERENCES students (id),
    student_no TEXT NOT NULL,
    student_name TEXT NOT NULL,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    school_code TEXT NOT NULL,
    region_code TEXT NOT NULL,
    authority_region TEXT NOT NULL REFERENCES authorities (region_code),
    payload TEXT NOT NULL,
    before_json TEXT NOT NULL,
    reason TEXT NOT NULL,
    filed_by BIGINT NOT NULL REFERENCES users (id),
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    applied_at TIMESTAMP,
    withdraw_reason TEXT
);
CREATE INDEX change_requests_school ON change_requests (school_id, status, id);
CREATE INDEX change_requests_region ON change_requests (region_code, id);
CREATE INDEX change_requests_authority ON change_requests (authority_region, status, id);
CREATE INDEX change_requests_student ON change_requests (student_id, id);

-- The two review steps (0 the school's reviewer, 1 the supervising authority) with who decided.
CREATE TABLE change_steps (
    change_id BIGINT NOT NULL REFERENCES change_requests (id),
    idx BIGINT NOT NULL,
    code TEXT NOT NULL,
    party_kind TEXT NOT NULL,
    party_code TEXT NOT NULL,
    decision TEXT,
    opinion TEXT,
    actor_user_id BIGINT,
    actor_name TEXT,
    decided_at TIMESTAMP,
    PRIMARY KEY (change_id, idx)
);

CREATE TABLE change_evidence (
    id INTEGER PRIMARY KEY,
    change_id BIGINT NOT NULL REFERENCES change_requests (id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BLOB NOT NULL,
    uploaded_at TIMESTAMP NOT NULL
);
CREATE INDEX change_evidence_change ON change_evidence (change_id);

-- An enrollment period opened or closed by an applied change names it; `entry_kind` says how the
-- period began (e.g. `return_from_abroad`, flagged in the archive as a return).
ALTER TABLE enrollments ADD COLUMN change_id BIGINT;
ALTER TABLE enrollments ADD COLUMN entry_kind TEXT;
