-- Tamper evidence: every chain entry (an event, or the tombstone it leaves)
-- carries a content hash and a chain hash. See docs/integrity.md.
--
-- content_hash = SHA-256 of the event's canonical serialisation (id included)
-- chain_hash   = SHA-256(previous entry's chain_hash || content_hash)
-- field_sums   = 2 bytes per canonical field (CRC-32, low half): not part of
--                the proof, only so a verification can name the changed field.
--
-- Rows stored before this migration are hashed by the server when it opens
-- the database (SQLite has no SHA-256 of its own).
ALTER TABLE events ADD COLUMN content_hash BLOB;
ALTER TABLE events ADD COLUMN chain_hash BLOB;
ALTER TABLE events ADD COLUMN field_sums BLOB;

-- One retention run: the background job's pass over the policy.
CREATE TABLE retention_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    -- The policy applied, as JSON, and its cut-off times.
    policy        TEXT NOT NULL,
    removed       INTEGER NOT NULL DEFAULT 0,
    -- 'running', 'done', 'held' (legal hold stopped it), 'failed'.
    status        TEXT NOT NULL DEFAULT 'running',
    -- The System event that records the run.
    event_id      INTEGER
);

-- Tombstones now keep the hashes of the event they replace, and say what
-- removed it: a bulk deletion (its DELETE event) or a retention run.
CREATE TABLE event_tombstones_v2 (
    id                INTEGER PRIMARY KEY,
    occurred_at       INTEGER NOT NULL,
    deleted_at        INTEGER NOT NULL,
    deletion_event_id INTEGER,
    retention_run_id  INTEGER REFERENCES retention_runs (id),
    content_hash      BLOB,
    chain_hash        BLOB,
    CHECK (deletion_event_id IS NOT NULL OR retention_run_id IS NOT NULL)
);
INSERT INTO event_tombstones_v2 (id, occurred_at, deleted_at, deletion_event_id)
SELECT id, occurred_at, deleted_at, deletion_event_id FROM event_tombstones;
DROP TABLE event_tombstones;
ALTER TABLE event_tombstones_v2 RENAME TO event_tombstones;
CREATE INDEX event_tombstones_deletion ON event_tombstones (deletion_event_id);

-- The chain's head (the last entry appended) and its retention cut: every
-- entry with an id up to cut_id has been removed by retention, and cut_hash
-- is the chain hash of entry cut_id, where a verification starts.
-- head_count and cut_count count entries (ids are dense: entry n is id n).
CREATE TABLE chain_state (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    head_id     INTEGER NOT NULL,
    head_hash   BLOB NOT NULL,
    head_count  INTEGER NOT NULL,
    cut_id      INTEGER NOT NULL DEFAULT 0,
    cut_hash    BLOB NOT NULL,
    cut_count   INTEGER NOT NULL DEFAULT 0
);
-- A new database starts an empty chain here; one that already holds events
-- gets its row from the server's backfill, once those events are hashed.
INSERT INTO chain_state (singleton, head_id, head_hash, head_count, cut_hash)
SELECT 1, 0, zeroblob(32), 0, zeroblob(32)
WHERE NOT EXISTS (SELECT 1 FROM events) AND NOT EXISTS (SELECT 1 FROM event_tombstones);

-- Checkpoints: the chain head at a moment (periodic, after a verification,
-- at a retention cut). Exported, they let a verification prove the chain
-- still passes through them.
CREATE TABLE chain_checkpoints (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    INTEGER NOT NULL,
    -- 'periodic', 'verification' or 'retention'.
    kind          TEXT NOT NULL CHECK (kind IN ('periodic', 'verification', 'retention')),
    last_id       INTEGER NOT NULL,
    entry_count   INTEGER NOT NULL,
    chain_hash    BLOB NOT NULL,
    -- Set when a verification walked through this checkpoint and found the
    -- chain matching it: a later verification may start from here.
    verified_at   INTEGER
);
CREATE INDEX chain_checkpoints_last ON chain_checkpoints (last_id);

-- Verifications: who started one, how far it got, what it found.
CREATE TABLE chain_verifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    started_by   TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('full', 'quick')),
    -- 'running', 'intact', 'broken', 'failed'.
    status       TEXT NOT NULL DEFAULT 'running',
    checked      INTEGER NOT NULL DEFAULT 0,
    total        INTEGER NOT NULL DEFAULT 0,
    -- The report (JSON) once finished.
    report       TEXT
);

-- Retention policy and legal hold as set in Settings. No row: the policy of
-- Leptos.toml applies and there is no hold.
CREATE TABLE retention_settings (
    singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
    -- JSON {"keep_days": n|null, "by_action": [{"action": "...", "keep_days": n|null}]};
    -- NULL: Leptos.toml's policy.
    policy       TEXT,
    legal_hold   INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT NOT NULL
);
