-- Prepared and running exports. A ticket is made by one request and
-- downloaded by another, which may reach another server: the ticket, its
-- progress and its cancellation live here, not in one server's memory.
CREATE TABLE export_jobs (
    token       TEXT PRIMARY KEY,
    owner       INTEGER NOT NULL,
    -- The selection (ExportSource as JSON) and the format (JSON).
    source      TEXT NOT NULL,
    format      TEXT NOT NULL,
    total       INTEGER NOT NULL,
    up_to       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    rows_sent   INTEGER NOT NULL DEFAULT 0,
    started     BOOLEAN NOT NULL DEFAULT FALSE,
    done        BOOLEAN NOT NULL DEFAULT FALSE,
    cancelled   BOOLEAN NOT NULL DEFAULT FALSE,
    failed      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX export_jobs_created ON export_jobs (created_at);
