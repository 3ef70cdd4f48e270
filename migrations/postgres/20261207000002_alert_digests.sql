-- Weekly digests: the admins who asked for one and the stream it goes to.
-- A week runs from Monday 00:00 UTC; the digest of the week just ended is
-- sent once, retried with the streams' backoff until the stream takes it.
CREATE TABLE alert_digests (
    user_id     BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    stream_id   BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    -- The start (µs) of the newest week sent; a new subscription starts
    -- with the week that ends next.
    sent_week   BIGINT NOT NULL,
    failures    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The inbox reads newest first along the primary key; an index of its own
-- only cost every new alert a write.
DROP INDEX alerts_newest;
