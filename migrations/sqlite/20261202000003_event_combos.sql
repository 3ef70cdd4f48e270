-- Every distinct combination of an event's categorical fields (initiator,
-- action, table, IP) and how many events hold it, kept by the store in the
-- transaction that inserts or removes the events. It is small (one row per
-- combination seen, not per event) and answers, without reading the log,
-- which values of a sort column a set of filters can reach and how many
-- events a filter without keyword or time range matches. A missing value is
-- the empty text or blob here (the ingest API stores empty text as NULL),
-- so that the UNIQUE key holds.
CREATE TABLE event_combos (
    id              INTEGER PRIMARY KEY,
    initiator_kind  TEXT NOT NULL,
    initiator_id    TEXT NOT NULL,
    initiator_name  TEXT NOT NULL,
    action          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    ip_bin          BLOB NOT NULL,
    n               INTEGER NOT NULL,
    UNIQUE (initiator_kind, initiator_id, initiator_name, action, table_name, ip_bin)
);

INSERT INTO event_combos (initiator_kind, initiator_id, initiator_name, action, table_name, ip_bin, n)
SELECT initiator_kind, COALESCE(initiator_id, ''), COALESCE(initiator_name, ''), action,
       COALESCE(table_name, ''), COALESCE(ip_bin, x''), COUNT(*)
FROM events
GROUP BY 1, 2, 3, 4, 5, 6;
