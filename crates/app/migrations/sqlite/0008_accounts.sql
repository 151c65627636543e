-- Accounts (issue 7 item 5): password history and age, sealing, TOTP, audit pruning anchor.
ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP;
ALTER TABLE users ADD COLUMN sealed_at TIMESTAMP;
ALTER TABLE users ADD COLUMN unsealed_at TIMESTAMP;
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- Hashes of each user's previous passwords (the policy refuses the last five).
CREATE TABLE password_history (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, id);

-- After `xueji audit prune`, the hash and number of the last removed row: verification starts
-- from here instead of from the genesis.
CREATE TABLE audit_anchor (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_at TIMESTAMP NOT NULL
);
