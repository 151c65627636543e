-- 对接, continued (issue 8), SQLite dialect. Keep tables and columns identical to
-- ../postgres/0013_dock_roll.sql (a test compares them).

-- The provincial node's own roll follows the hub's transfers: one row per transfer whose file was
-- pulled (调档) and that concerns the node's province, written in the same transaction as the
-- feed page and cursor that showed it (so a crash loses none, and a repeated event adds none).
-- `direction` is `in` (a student enrolled at one of its schools, from the hub's signed file) or
-- `out` (a student leaving one of its schools); `state` pending → applied (or failed, with the
-- reason in `outcome`). Applying it and setting `applied` is one transaction: applied once.
CREATE TABLE node_roll (
    transfer_id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    direction TEXT NOT NULL,
    student_no TEXT NOT NULL,
    from_school TEXT NOT NULL,
    to_school TEXT NOT NULL,
    to_grade TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    created_at TIMESTAMP NOT NULL,
    applied_at TIMESTAMP
);
CREATE INDEX node_roll_state ON node_roll (state, seq);

-- Key rotation: the replaced key stays valid until `previous_key_until` (the overlap window).
ALTER TABLE docked_provinces ADD COLUMN previous_key TEXT;
ALTER TABLE docked_provinces ADD COLUMN previous_key_until TIMESTAMP;
-- Undocking keeps the row (its feed and numbering are evidence, and a later re-docking goes on
-- from the same sequence); a province is docked while `undocked_at` is null.
ALTER TABLE docked_provinces ADD COLUMN undocked_at TIMESTAMP;

-- Retention of the message log: pruning by age.
CREATE INDEX dock_messages_at ON dock_messages (at);
