-- Provincial policy (Art. 11), deadlines oversight and parents' query codes.
-- Keep identical in tables and columns to ../postgres/0003_policy.sql.

-- Versioned: a transfer keeps the versions it was filed under. No row = the national default.
CREATE TABLE province_policies (
    province_code TEXT NOT NULL,
    version BIGINT NOT NULL,
    policy_json TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    PRIMARY KEY (province_code, version)
);

ALTER TABLE transfers ADD COLUMN from_policy_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN to_policy_version BIGINT NOT NULL DEFAULT 0;
-- 查询码: lets a parent follow the application with the student's name.
ALTER TABLE transfers ADD COLUMN query_code TEXT;
ALTER TABLE transfers ADD COLUMN closed_reason TEXT;
CREATE UNIQUE INDEX transfers_query_code ON transfers (query_code);

-- Each step keeps the rule it runs under.
ALTER TABLE transfer_steps ADD COLUMN deadline_days BIGINT NOT NULL DEFAULT 10;
ALTER TABLE transfer_steps ADD COLUMN overdue_action TEXT NOT NULL DEFAULT 'flag';
-- After escalation, the authority above may act on the step.
ALTER TABLE transfer_steps ADD COLUMN escalated_to TEXT;
ALTER TABLE transfer_steps ADD COLUMN auto_decided BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX transfer_steps_due ON transfer_steps (due_date, decision);

-- Reminders sent (due soon, overdue), so that each goes out once.
CREATE TABLE step_reminders (
    transfer_id BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    kind TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (transfer_id, idx, kind)
);

-- Failed parent queries, for throttling guesses.
CREATE TABLE query_failures (
    id INTEGER PRIMARY KEY,
    ip TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX query_failures_ip ON query_failures (ip, at);
