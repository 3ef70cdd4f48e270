-- The initiator's role in the system that logged the event (View details).
ALTER TABLE events ADD COLUMN initiator_role TEXT;

-- The greatest occurred_at among this event and every event inserted before it
-- (ids are given in insertion order by the single writer). A keyword search
-- walks the full-text index from the newest id down and stops as soon as no
-- older id can hold an event later than the ones it has found.
ALTER TABLE events ADD COLUMN max_occurred_at INTEGER NOT NULL DEFAULT 0;

UPDATE events SET max_occurred_at = w.m
FROM (SELECT id, MAX(occurred_at) OVER (ORDER BY id) AS m FROM events) AS w
WHERE w.id = events.id;

-- The filterable fields as single index tokens (hex, so any value is one
-- token): u<initiator kind:id>, a<action>, t<table>. A keyword search with
-- filters then becomes one full-text query, and the index intersects its
-- lists before any event row is read.
ALTER TABLE events ADD COLUMN filter_keys TEXT GENERATED ALWAYS AS (
    'u' || hex(initiator_kind || ':' || COALESCE(initiator_id, ''))
    || ' a' || hex(action)
    || ' t' || hex(COALESCE(table_name, ''))
) VIRTUAL;

DROP TRIGGER events_fts_insert;
DROP TRIGGER events_fts_delete;
DROP TRIGGER events_fts_update;
DROP TABLE events_fts;

CREATE VIRTUAL TABLE events_fts USING fts5 (
    description,
    initiator_name,
    initiator_email,
    table_name,
    primary_key,
    ip,
    filter_keys,
    content = 'events',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO events_fts (events_fts) VALUES ('rebuild');

CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, description, initiator_name, initiator_email, table_name, primary_key, ip, filter_keys)
    VALUES (new.id, new.description, new.initiator_name, new.initiator_email, new.table_name, new.primary_key, new.ip, new.filter_keys);
END;

CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, description, initiator_name, initiator_email, table_name, primary_key, ip, filter_keys)
    VALUES ('delete', old.id, old.description, old.initiator_name, old.initiator_email, old.table_name, old.primary_key, old.ip, old.filter_keys);
END;

CREATE TRIGGER events_fts_update AFTER UPDATE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, description, initiator_name, initiator_email, table_name, primary_key, ip, filter_keys)
    VALUES ('delete', old.id, old.description, old.initiator_name, old.initiator_email, old.table_name, old.primary_key, old.ip, old.filter_keys);
    INSERT INTO events_fts (rowid, description, initiator_name, initiator_email, table_name, primary_key, ip, filter_keys)
    VALUES (new.id, new.description, new.initiator_name, new.initiator_email, new.table_name, new.primary_key, new.ip, new.filter_keys);
END;
