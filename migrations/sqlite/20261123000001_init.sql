-- Audit events. Times are microseconds since the Unix epoch, UTC.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    ip              TEXT,
    -- 16-byte big-endian form (IPv4 mapped into IPv6) so CIDR filters are range scans.
    ip_bin          BLOB,
    initiator_kind  TEXT NOT NULL CHECK (initiator_kind IN ('user', 'system', 'api_key', 'portal')),
    initiator_id    TEXT,
    initiator_name  TEXT,
    initiator_email TEXT,
    action          TEXT NOT NULL,
    table_name      TEXT,
    primary_key     TEXT,
    description     TEXT NOT NULL DEFAULT '',
    before_data     TEXT CHECK (before_data IS NULL OR json_valid(before_data)),
    after_data      TEXT CHECK (after_data IS NULL OR json_valid(after_data)),
    user_agent      TEXT,
    request_id      TEXT,
    session_id      TEXT,
    -- The API key that delivered the event, when it came through the ingest API.
    api_key_id      INTEGER REFERENCES api_keys (id)
);

-- Newest-first listing and keyset paging.
CREATE INDEX events_occurred ON events (occurred_at DESC, id DESC);
-- Filters combined with the time order.
CREATE INDEX events_action ON events (action, occurred_at DESC);
CREATE INDEX events_initiator ON events (initiator_kind, initiator_id, occurred_at DESC);
CREATE INDEX events_table ON events (table_name, occurred_at DESC);
-- History of one record.
CREATE INDEX events_record ON events (table_name, primary_key, occurred_at DESC);
CREATE INDEX events_ip ON events (ip_bin);

-- Keyword search over description, initiator, table, key and IP.
CREATE VIRTUAL TABLE events_fts USING fts5 (
    description,
    initiator_name,
    initiator_email,
    table_name,
    primary_key,
    ip,
    content = 'events',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, description, initiator_name, initiator_email, table_name, primary_key, ip)
    VALUES (new.id, new.description, new.initiator_name, new.initiator_email, new.table_name, new.primary_key, new.ip);
END;

CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, description, initiator_name, initiator_email, table_name, primary_key, ip)
    VALUES ('delete', old.id, old.description, old.initiator_name, old.initiator_email, old.table_name, old.primary_key, old.ip);
END;

CREATE TRIGGER events_fts_update AFTER UPDATE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, description, initiator_name, initiator_email, table_name, primary_key, ip)
    VALUES ('delete', old.id, old.description, old.initiator_name, old.initiator_email, old.table_name, old.primary_key, old.ip);
    INSERT INTO events_fts (rowid, description, initiator_name, initiator_email, table_name, primary_key, ip)
    VALUES (new.id, new.description, new.initiator_name, new.initiator_email, new.table_name, new.primary_key, new.ip);
END;

-- Requests that signed-in admins made to Auditdeck itself.
CREATE TABLE admin_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at  INTEGER NOT NULL,
    user_id      TEXT,
    user_name    TEXT NOT NULL,
    user_email   TEXT NOT NULL,
    ip           TEXT,
    url          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('WEB', 'API')),
    method       TEXT NOT NULL,
    status       INTEGER NOT NULL,
    duration_us  INTEGER NOT NULL
);

CREATE INDEX admin_sessions_occurred ON admin_sessions (occurred_at DESC, id DESC);
CREATE INDEX admin_sessions_user ON admin_sessions (user_email, occurred_at DESC);

-- API keys for ingestion. Only the SHA-256 of a key is stored; the key is shown once.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    label        TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
