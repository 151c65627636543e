-- Audit chains (issue 6): the single chain becomes many independent chains, so that writers on
-- PostgreSQL no longer queue on one head row. A chain is identified by a number:
-- province code × 100 + shard (0–15, from a hash of the entity), national and system rows in
-- 0–15. `audit_head.id` and `audit_anchor.id` are the chain number; the old single chain is
-- chain 1 and keeps every row written before this migration.
-- Each row names its chain and the `seq` of the previous row of that chain (`prev_seq`), so that
-- a missing row is named even though `seq` is no longer contiguous within a chain.
-- SQLite: the table is rebuilt with `seq` as the rowid (one B-tree less per audit row written).
CREATE TABLE audit_log_new (
    seq INTEGER PRIMARY KEY,
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
    hash TEXT NOT NULL,
    chain BIGINT NOT NULL DEFAULT 1,
    prev_seq BIGINT NOT NULL DEFAULT 0
);
INSERT INTO audit_log_new (seq, at, actor_user_id, actor_name, actor_org, action, entity_type,
    entity_id, before_json, after_json, request_id, prev_hash, hash, chain, prev_seq)
SELECT seq, at, actor_user_id, actor_name, actor_org, action, entity_type, entity_id,
    before_json, after_json, request_id, prev_hash, hash, 1, seq - 1
FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_entity ON audit_log (entity_type, entity_id, seq);
