-- Backups: each copy of the database `auditdeck backup` or the schedule
-- made (or failed to make), with the chain's head it covers and whether the
-- copy's own chain walked to that head.
CREATE TABLE backups (
    id          BIGSERIAL PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    -- scheduled or command
    kind        TEXT NOT NULL,
    -- verified or failed
    status      TEXT NOT NULL,
    path        TEXT NOT NULL,
    head_id     BIGINT,
    chain_hash  TEXT,
    bytes       BIGINT,
    error       TEXT,
    event_id    BIGINT
);
CREATE INDEX backups_kind ON backups (kind, id);
