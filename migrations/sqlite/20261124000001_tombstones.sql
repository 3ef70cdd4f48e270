-- What is left of a deleted event: its id and time (and, with the integrity
-- chain, its hashes), and the event that records the deletion. The event row
-- itself is gone, so pages, searches and exports never see it.
CREATE TABLE event_tombstones (
    id                INTEGER PRIMARY KEY,
    occurred_at       INTEGER NOT NULL,
    deleted_at        INTEGER NOT NULL,
    deletion_event_id INTEGER NOT NULL
);

CREATE INDEX event_tombstones_deletion ON event_tombstones (deletion_event_id);
