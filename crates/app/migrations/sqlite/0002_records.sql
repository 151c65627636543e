-- 学籍注册, 公安比对 and 问题学籍 (issue 5), SQLite dialect. Keep tables and columns identical to
-- ../postgres/0002_records.sql (a test compares them).

-- The identity check (公安比对) of a record: `pending` (registered with an L number, waiting for
-- the batch check), `passed` (formal G number issued), `failed` (a problem record says why), or
-- `not_applicable` (no resident identity number: the check does not apply). Records that existed
-- before this migration hold formal numbers, hence the default.
ALTER TABLE students ADD COLUMN identity_status TEXT NOT NULL DEFAULT 'passed';
ALTER TABLE students ADD COLUMN identity_checked_at TIMESTAMP;
-- The batch job's queue: only the pending few are indexed.
CREATE INDEX students_identity_pending ON students (id) WHERE identity_status = 'pending';
-- 查重 by name + gender + birth date (疑似重复).
CREATE INDEX students_person ON students (name, gender, birth_date);

-- Every identity check made, with the adapter that answered (a simulated one says so).
CREATE TABLE identity_checks (
    id INTEGER PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES students (id),
    adapter TEXT NOT NULL,
    simulated BOOLEAN NOT NULL,
    result TEXT NOT NULL,
    checked_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_checks_student ON identity_checks (student_id, id);

-- 问题学籍: `kind` is id_not_found (不存在), name_mismatch (姓名不匹配), duplicate_identity or
-- suspected_duplicate (疑似重复); `status` open → resolved. `related_student_id` names the other
-- record of a (suspected) duplicate.
CREATE TABLE problem_records (
    id INTEGER PRIMARY KEY,
    student_id BIGINT NOT NULL REFERENCES students (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    related_student_id BIGINT REFERENCES students (id),
    created_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP
);
CREATE INDEX problem_records_student ON problem_records (student_id, id);
CREATE INDEX problem_records_open ON problem_records (status, kind, id);
