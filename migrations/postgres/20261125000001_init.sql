-- Auditdeck on PostgreSQL: the same tables as the SQLite schema (see
-- migrations/sqlite), in one migration. Times are microseconds since the Unix
-- epoch, UTC, as BIGINT; hashes are BYTEA.

CREATE TABLE api_keys (
    id           BIGSERIAL PRIMARY KEY,
    label        TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- Audit events, partitioned by month of occurred_at (events_pYYYYMM, made by
-- the insert path when a batch needs one), so retention drops whole months.
-- Ids are given by the insert path under the writer lock (the chain's next
-- entry), so (id) is unique though the key must include the partition column.
CREATE TABLE events (
    id              BIGINT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    ip              TEXT,
    -- 16 bytes, IPv4 mapped into IPv6: the IP column's sort order, as in SQLite.
    ip_bin          BYTEA,
    -- The address as inet, for CIDR filters (<<=).
    ip_inet         INET GENERATED ALWAYS AS (ip::inet) STORED,
    initiator_kind  TEXT NOT NULL CHECK (initiator_kind IN ('user', 'system', 'api_key', 'portal')),
    initiator_id    TEXT,
    initiator_name  TEXT,
    initiator_email TEXT,
    initiator_role  TEXT,
    action          TEXT NOT NULL,
    table_name      TEXT,
    primary_key     TEXT,
    description     TEXT NOT NULL DEFAULT '',
    -- JSON text exactly as received (it is hashed byte for byte).
    before_data     TEXT CHECK (before_data IS NULL OR before_data::json IS NOT NULL),
    after_data      TEXT CHECK (after_data IS NULL OR after_data::json IS NOT NULL),
    user_agent      TEXT,
    request_id      TEXT,
    session_id      TEXT,
    api_key_id      BIGINT REFERENCES api_keys (id),
    -- The greatest occurred_at of this event and every event before it.
    max_occurred_at BIGINT NOT NULL DEFAULT 0,
    content_hash    BYTEA,
    chain_hash      BYTEA,
    field_sums      BYTEA,
    -- Keyword search: the text columns cut at every character that is not a
    -- letter or digit (as SQLite's unicode61 tokenizer does), lower-cased.
    search          TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', regexp_replace(lower(
                        description || ' ' || coalesce(initiator_name, '') || ' '
                        || coalesce(initiator_email, '') || ' ' || coalesce(table_name, '') || ' '
                        || coalesce(primary_key, '') || ' ' || coalesce(ip, '')),
                        '[^[:alnum:]]+', ' ', 'g'))) STORED,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE INDEX events_occurred ON events (occurred_at DESC, id DESC);
CREATE INDEX events_action ON events (action, occurred_at DESC);
CREATE INDEX events_initiator ON events (initiator_kind, initiator_id, occurred_at DESC);
CREATE INDEX events_table ON events (table_name, occurred_at DESC);
CREATE INDEX events_record ON events (table_name, primary_key, occurred_at DESC);
CREATE INDEX events_ip ON events (ip_bin, occurred_at DESC, id DESC);
CREATE INDEX events_cidr ON events USING gist (ip_inet inet_ops);
CREATE INDEX events_search ON events USING gin (search);

CREATE TABLE admin_sessions (
    id           BIGSERIAL PRIMARY KEY,
    occurred_at  BIGINT NOT NULL,
    user_id      TEXT,
    user_name    TEXT NOT NULL,
    user_email   TEXT NOT NULL,
    ip           TEXT,
    url          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('WEB', 'API')),
    method       TEXT NOT NULL,
    status       BIGINT NOT NULL,
    duration_us  BIGINT NOT NULL
);
CREATE INDEX admin_sessions_occurred ON admin_sessions (occurred_at DESC, id DESC);
CREATE INDEX admin_sessions_user ON admin_sessions (user_email, occurred_at DESC);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'auditor', 'admin')),
    password_hash TEXT NOT NULL,
    disabled_at   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE login_failures (
    id         BIGSERIAL PRIMARY KEY,
    username   TEXT NOT NULL,
    ip         TEXT NOT NULL,
    failed_at  BIGINT NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (lower(username), failed_at);
CREATE INDEX login_failures_ip ON login_failures (ip, failed_at);

CREATE TABLE retention_runs (
    id            BIGSERIAL PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    policy        TEXT NOT NULL,
    removed       BIGINT NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'running',
    event_id      BIGINT
);

CREATE TABLE event_tombstones (
    id                BIGINT PRIMARY KEY,
    occurred_at       BIGINT NOT NULL,
    deleted_at        BIGINT NOT NULL,
    deletion_event_id BIGINT,
    retention_run_id  BIGINT REFERENCES retention_runs (id),
    content_hash      BYTEA,
    chain_hash        BYTEA,
    CHECK (deletion_event_id IS NOT NULL OR retention_run_id IS NOT NULL)
);
CREATE INDEX event_tombstones_deletion ON event_tombstones (deletion_event_id);

CREATE TABLE chain_state (
    singleton   BIGINT PRIMARY KEY CHECK (singleton = 1),
    head_id     BIGINT NOT NULL,
    head_hash   BYTEA NOT NULL,
    head_count  BIGINT NOT NULL,
    cut_id      BIGINT NOT NULL DEFAULT 0,
    cut_hash    BYTEA NOT NULL,
    cut_count   BIGINT NOT NULL DEFAULT 0
);
INSERT INTO chain_state (singleton, head_id, head_hash, head_count, cut_hash)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE chain_checkpoints (
    id            BIGSERIAL PRIMARY KEY,
    created_at    BIGINT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('periodic', 'verification', 'retention')),
    last_id       BIGINT NOT NULL,
    entry_count   BIGINT NOT NULL,
    chain_hash    BYTEA NOT NULL,
    verified_at   BIGINT
);
CREATE INDEX chain_checkpoints_last ON chain_checkpoints (last_id);

CREATE TABLE chain_verifications (
    id           BIGSERIAL PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    started_by   TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('full', 'quick')),
    status       TEXT NOT NULL DEFAULT 'running',
    checked      BIGINT NOT NULL DEFAULT 0,
    total        BIGINT NOT NULL DEFAULT 0,
    report       TEXT,
    -- Written with the progress: a running verification whose progress has
    -- stopped for a minute lost its server.
    heartbeat_at BIGINT NOT NULL DEFAULT 0
);
-- One verification at a time, whichever server started it.
CREATE UNIQUE INDEX chain_verifications_one_running ON chain_verifications (status)
    WHERE status = 'running';

CREATE TABLE retention_settings (
    singleton    BIGINT PRIMARY KEY CHECK (singleton = 1),
    policy       TEXT,
    legal_hold   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT NOT NULL
);
