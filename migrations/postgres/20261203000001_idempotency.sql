-- Ingest that is safe to retry: the answer to each request that carried an
-- Idempotency-Key, per API key, kept 24 hours. It is written in the same
-- transaction as the events, so a request is either stored with its answer
-- or not at all, and a retry answers the first answer.
CREATE TABLE ingest_requests (
    api_key_id      BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash       TEXT NOT NULL,
    ids             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, idempotency_key)
);
CREATE INDEX ingest_requests_created ON ingest_requests (created_at);
