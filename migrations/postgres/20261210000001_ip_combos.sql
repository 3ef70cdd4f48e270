-- Every distinct combination of an event's initiator, action, table and
-- exact IP address, and how many events hold it, kept by the store in the
-- transactions that insert or remove events (as `event_combos` is; a dropped
-- partition's events are subtracted before it goes). `event_combos` counts an IP
-- under its network (a /16), so it could not count a narrower CIDR range, and
-- a user's events sorted by IP had to walk every address of their network up
-- to theirs; this one lists the addresses themselves. A missing initiator id
-- or table is the empty text here; events without an IP are left out. A log
-- where every event comes from a new address grows it by a row an event.
CREATE TABLE ip_combos (
    ip_bin          BYTEA NOT NULL,
    initiator_kind  TEXT NOT NULL,
    initiator_id    TEXT NOT NULL,
    action          TEXT NOT NULL,
    table_name      TEXT NOT NULL,
    n               BIGINT NOT NULL,
    PRIMARY KEY (ip_bin, initiator_kind, initiator_id, action, table_name)
);

CREATE INDEX ip_combos_initiator ON ip_combos (initiator_kind, initiator_id, ip_bin);

INSERT INTO ip_combos (ip_bin, initiator_kind, initiator_id, action, table_name, n)
SELECT ip_bin, initiator_kind, COALESCE(initiator_id, ''), action, COALESCE(table_name, ''), COUNT(*)
FROM events
WHERE ip_bin IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;
