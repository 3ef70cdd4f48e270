-- An event's own id, sent by the client (`event_id`, unique per API key):
-- a second event with the same event_id and the same content is reported as
-- a duplicate and not stored again; with other content it is refused. Each
-- row names the stored event and the hash of the event as it was sent.
CREATE TABLE ingest_event_ids (
    api_key_id   INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    id           INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (api_key_id, event_id)
) WITHOUT ROWID;
CREATE INDEX ingest_event_ids_id ON ingest_event_ids (id);
