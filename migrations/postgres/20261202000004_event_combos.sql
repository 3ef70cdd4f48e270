-- Every distinct combination of an event's categorical fields (initiator,
-- action, table, IP network) and how many events hold it, kept by the store in the
-- transaction that inserts or removes the events (a dropped partition's
-- events are subtracted before it goes). It is small (one row per
-- combination seen, not per event) and answers, without reading the log,
-- which values of a sort column a set of filters can reach and how many
-- events a filter without keyword or time range matches. A missing value is
-- the empty text or bytea here (the ingest API stores empty text as NULL),
-- so that the UNIQUE key holds. An IP counts under its network, so that a
-- log of many addresses keeps few rows here: an IPv4 address under its /16,
-- an IPv6 one under its /32 (the whole address when its first 32 bits are
-- zero), the 16-byte key's first 14 or 4 bytes (or all 16). No network is
-- the start of another, so they sort as their addresses do.
CREATE TABLE event_combos (
    id              BIGSERIAL PRIMARY KEY,
    initiator_kind  TEXT NOT NULL,
    initiator_id    TEXT NOT NULL,
    initiator_name  TEXT NOT NULL,
    action          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    ip_net          BYTEA NOT NULL,
    n               BIGINT NOT NULL,
    UNIQUE (initiator_kind, initiator_id, initiator_name, action, table_name, ip_net)
);

INSERT INTO event_combos (initiator_kind, initiator_id, initiator_name, action, table_name, ip_net, n)
SELECT initiator_kind, COALESCE(initiator_id, ''), COALESCE(initiator_name, ''), action,
       COALESCE(table_name, ''),
       CASE WHEN ip_bin IS NULL THEN '\x'::bytea WHEN substring(ip_bin from 1 for 12) = '\x00000000000000000000ffff'::bytea THEN substring(ip_bin from 1 for 14) WHEN substring(ip_bin from 1 for 4) = '\x00000000'::bytea THEN ip_bin ELSE substring(ip_bin from 1 for 4) END, COUNT(*)
FROM events
GROUP BY 1, 2, 3, 4, 5, 6;
