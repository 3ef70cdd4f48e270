-- Streams, delivered: what each destination needs to be sent to (its
-- signing secret or token, a previous secret that still signs during a
-- rotation, custom headers), what it delivered today, and its last attempts.
ALTER TABLE streams ADD COLUMN secret TEXT NOT NULL DEFAULT '';
ALTER TABLE streams ADD COLUMN previous_secret TEXT;
ALTER TABLE streams ADD COLUMN previous_secret_until INTEGER NOT NULL DEFAULT 0;
-- Custom headers, one "Name: value" a line.
ALTER TABLE streams ADD COLUMN headers TEXT NOT NULL DEFAULT '';
-- Events delivered on the UTC day `today_day` (days since the epoch).
ALTER TABLE streams ADD COLUMN today_day INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN today_delivered INTEGER NOT NULL DEFAULT 0;

-- The last attempts of each stream (the delivery log; the oldest beyond a
-- hundred a stream are let go as new ones come).
CREATE TABLE stream_attempts (
    id          INTEGER PRIMARY KEY,
    stream_id   INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    -- delivered, failed, test, test_failed, or gap (events deleted before
    -- delivery)
    outcome     TEXT NOT NULL,
    events      INTEGER NOT NULL DEFAULT 0,
    first_id    INTEGER,
    last_id     INTEGER,
    status      INTEGER,
    error       TEXT,
    -- For a gap: what removed the events ("event:<id>", "retention:<run>").
    cause       TEXT,
    duration_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stream_attempts_by_stream ON stream_attempts (stream_id, id);
