-- xueji schema, SQLite dialect. Keep tables and columns identical to ../postgres/0001_init.sql
-- (a test compares them). Types: BIGINT ids, TEXT codes, DATE/TIMESTAMP columns hold chrono values.

CREATE TABLE regions (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    parent_code TEXT,
    province_code TEXT NOT NULL
);
CREATE INDEX regions_parent ON regions (parent_code, code);

-- 学籍主管部门: one per region.
CREATE TABLE authorities (
    region_code TEXT PRIMARY KEY REFERENCES regions (code),
    name TEXT NOT NULL
);

CREATE TABLE schools (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    region_code TEXT NOT NULL REFERENCES regions (code),
    authority_region TEXT NOT NULL REFERENCES authorities (region_code),
    school_type TEXT NOT NULL,
    grades TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX schools_region ON schools (region_code, code);
CREATE INDEX schools_authority ON schools (authority_region, code);

CREATE TABLE classes (
    id INTEGER PRIMARY KEY,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    grade TEXT NOT NULL,
    name TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    UNIQUE (school_id, grade, name)
);

CREATE TABLE ethnicities (code TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE id_types (code TEXT PRIMARY KEY, name TEXT NOT NULL);

-- One row per person nationwide (一人一籍): unique identity document.
CREATE TABLE students (
    id INTEGER PRIMARY KEY,
    student_no TEXT NOT NULL UNIQUE,
    id_type TEXT NOT NULL REFERENCES id_types (code),
    id_number TEXT NOT NULL,
    name TEXT NOT NULL,
    gender TEXT NOT NULL,
    birth_date DATE NOT NULL,
    ethnicity TEXT NOT NULL REFERENCES ethnicities (code),
    status TEXT NOT NULL,
    school_id BIGINT REFERENCES schools (id),
    grade TEXT,
    class_id BIGINT REFERENCES classes (id),
    region_code TEXT,
    version BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (id_type, id_number)
);
CREATE INDEX students_school ON students (school_id, grade, class_id, id);
CREATE INDEX students_region ON students (region_code, id);
CREATE INDEX students_name ON students (name);

-- Every student number a student has held (L → G keeps the past).
CREATE TABLE student_numbers (
    student_no TEXT PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES students (id),
    kind TEXT NOT NULL,
    assigned_at TIMESTAMP NOT NULL,
    replaced_at TIMESTAMP
);
CREATE INDEX student_numbers_student ON student_numbers (student_id);

-- Enrollment history: the current one has ended_at NULL; a sending school keeps its 已转出 row.
CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES students (id),
    school_id BIGINT NOT NULL REFERENCES schools (id),
    grade TEXT NOT NULL,
    class_id BIGINT REFERENCES classes (id),
    status TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    transfer_id BIGINT
);
CREATE INDEX enrollments_student ON enrollments (student_id, id);
CREATE INDEX enrollments_school ON enrollments (school_id, status, id);

-- 在办业务: at most one open business per student, enforced by the primary key.
CREATE TABLE open_businesses (
    student_id BIGINT PRIMARY KEY REFERENCES students (id),
    kind TEXT NOT NULL,
    ref_id BIGINT NOT NULL,
    opened_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    school_id BIGINT REFERENCES schools (id),
    authority_region TEXT REFERENCES authorities (region_code),
    locked_until TIMESTAMP,
    last_login_at TIMESTAMP,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX users_school ON users (school_id);
CREATE INDEX users_authority ON users (authority_region);

-- Web sessions and API tokens; only a SHA-256 of the secret is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_user ON login_failures (username, at);
CREATE INDEX login_failures_ip ON login_failures (ip, at);

-- Working-day calendar (State Council notices), editable by the national administrator.
CREATE TABLE holidays (
    day DATE PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL
);

-- Append-only audit trail, each row chained to the previous by hash.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor_user_id BIGINT,
    actor_name TEXT NOT NULL,
    actor_org TEXT NOT NULL,
    action TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    request_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_entity ON audit_log (entity_type, entity_id, seq);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    org_kind TEXT NOT NULL,
    org_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    transfer_id BIGINT,
    text TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    read_at TIMESTAMP
);
CREATE INDEX notifications_org ON notifications (org_kind, org_code, id);

CREATE TABLE transfers (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    student_id BIGINT NOT NULL REFERENCES students (id),
    student_no TEXT NOT NULL,
    student_name TEXT NOT NULL,
    from_school_id BIGINT NOT NULL REFERENCES schools (id),
    to_school_id BIGINT NOT NULL REFERENCES schools (id),
    from_school TEXT NOT NULL,
    to_school TEXT NOT NULL,
    from_authority TEXT NOT NULL,
    to_authority TEXT NOT NULL,
    from_region TEXT NOT NULL,
    to_region TEXT NOT NULL,
    from_grade TEXT NOT NULL,
    from_class_id BIGINT,
    to_grade TEXT NOT NULL,
    to_class_id BIGINT NOT NULL REFERENCES classes (id),
    reason TEXT NOT NULL,
    filed_by BIGINT NOT NULL REFERENCES users (id),
    current_step BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    approved_at TIMESTAMP,
    pulled_at TIMESTAMP,
    paper_due_date DATE,
    paper_sent_at TIMESTAMP,
    paper_method TEXT,
    paper_sent_note TEXT,
    paper_received_at TIMESTAMP,
    paper_received_note TEXT,
    withdraw_reason TEXT
);
CREATE INDEX transfers_to_school ON transfers (to_school_id, status, id);
CREATE INDEX transfers_from_school ON transfers (from_school_id, status, id);
CREATE INDEX transfers_to_region ON transfers (to_region, id);
CREATE INDEX transfers_from_region ON transfers (from_region, id);
CREATE INDEX transfers_student ON transfers (student_id, id);

CREATE TABLE transfer_steps (
    transfer_id BIGINT NOT NULL REFERENCES transfers (id),
    idx BIGINT NOT NULL,
    code TEXT NOT NULL,
    side TEXT NOT NULL,
    role TEXT NOT NULL,
    party_kind TEXT NOT NULL,
    party_code TEXT NOT NULL,
    shared BOOLEAN NOT NULL,
    decision TEXT,
    opinion TEXT,
    actor_user_id BIGINT,
    actor_name TEXT,
    decided_at TIMESTAMP,
    began_on DATE,
    due_date DATE,
    PRIMARY KEY (transfer_id, idx)
);
-- Work lists: the steps waiting for a party.
CREATE INDEX transfer_steps_party ON transfer_steps (party_kind, party_code, decision, transfer_id);

CREATE TABLE transfer_evidence (
    id INTEGER PRIMARY KEY,
    transfer_id BIGINT NOT NULL REFERENCES transfers (id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BLOB NOT NULL,
    uploaded_at TIMESTAMP NOT NULL
);
CREATE INDEX transfer_evidence_transfer ON transfer_evidence (transfer_id);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
