-- Audit chains (issue 6): the single chain becomes many independent chains, so that writers no
-- longer queue on one head row. A chain is identified by a number: province code × 100 + shard
-- (0–15, from a hash of the entity), national and system rows in 0–15. `audit_head.id` and
-- `audit_anchor.id` are the chain number; the old single chain is chain 1 and keeps every row
-- written before this migration.
-- Each row names its chain and the `seq` of the previous row of that chain (`prev_seq`), so that
-- a missing row is named even though `seq` is no longer contiguous within a chain. `seq` comes
-- from a sequence, taken while the chain's head is locked: increasing within each chain.
ALTER TABLE audit_log ADD COLUMN chain BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN prev_seq BIGINT NOT NULL DEFAULT 0;
UPDATE audit_log SET prev_seq = seq - 1;
CREATE SEQUENCE audit_log_seq;
SELECT setval('audit_log_seq', GREATEST(m, 1), m > 0)
FROM (SELECT GREATEST(COALESCE((SELECT MAX(seq) FROM audit_log), 0),
                      COALESCE((SELECT MAX(seq) FROM audit_head), 0)) AS m) AS last;
