-- 对接 (docking): provinces whose own systems take part in transfers through /api/dock/v1.

-- A docked province, its system's Ed25519 public key, and its feed's sequence and cursor.
CREATE TABLE docked_provinces (
    province TEXT PRIMARY KEY REFERENCES regions (code),
    public_key TEXT NOT NULL,
    -- The machine account its actions are recorded under (username `dock:PROVINCE`, no password).
    user_id BIGINT NOT NULL REFERENCES users (id),
    -- The sequence of its feed: the last event number given out (row-locked while writing one).
    last_seq BIGINT NOT NULL DEFAULT 0,
    -- Everything up to here has been acknowledged.
    acked_through BIGINT NOT NULL DEFAULT 0,
    docked_at TIMESTAMP NOT NULL,
    last_fetch_at TIMESTAMP,
    last_contact_at TIMESTAMP
);

-- The outbox: one row per transfer change per docked province concerned, written in the
-- change's transaction. Kept after acknowledgement as evidence.
CREATE TABLE dock_events (
    province TEXT NOT NULL REFERENCES docked_provinces (province),
    seq BIGINT NOT NULL,
    transfer_id BIGINT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (province, seq)
);
CREATE INDEX dock_events_transfer ON dock_events (transfer_id);

-- Idempotency: the first answer to each (province, key); a repeat gets it back unchanged.
CREATE TABLE dock_idempotency (
    province TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    -- `pending` while the first request runs, then `done`.
    state TEXT NOT NULL,
    status BIGINT,
    response TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (province, idem_key)
);

-- The message log (evidence): every request received on /api/dock/v1, refused ones included,
-- and every signed document sent.
CREATE TABLE dock_messages (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL,
    province TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    idem_key TEXT,
    signed_at TEXT,
    signature TEXT,
    body_sha256 TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX dock_messages_province ON dock_messages (province, id);

-- The hub's own Ed25519 key (signs the documents it sends); generated on first use.
CREATE TABLE dock_hub_key (
    id BIGINT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- The provincial node (`xueji serve --mode province`): its cursor in the hub's feed, the events
-- it has received, and the messages it must deliver (kept until the hub answers).
CREATE TABLE node_state (
    id BIGINT PRIMARY KEY,
    province TEXT NOT NULL,
    hub TEXT NOT NULL,
    feed_cursor BIGINT NOT NULL DEFAULT 0,
    last_sync_at TIMESTAMP,
    last_error TEXT
);

CREATE TABLE node_inbox (
    seq BIGINT PRIMARY KEY,
    transfer_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX node_inbox_transfer ON node_inbox (transfer_id, seq);

CREATE TABLE node_outbox (
    id INTEGER PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    queued_by TEXT NOT NULL,
    state TEXT NOT NULL,
    status BIGINT,
    answer TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
