-- Every address each initiator has acted from, and how many events it sent
-- from there, kept by the store in the transactions that insert or remove
-- events (as `event_combos` is). `event_combos` counts an IP under its
-- network (a /16), so a user's events sorted by IP had to walk every
-- address of their network up to theirs; this lists the user's own
-- addresses, each then read as one range of the IP index. A System
-- initiator's id is the empty text here; events without an IP are left out.
CREATE TABLE initiator_ips (
    ip_bin          BLOB NOT NULL,
    initiator_kind  TEXT NOT NULL,
    initiator_id    TEXT NOT NULL,
    n               INTEGER NOT NULL,
    PRIMARY KEY (ip_bin, initiator_kind, initiator_id)
) WITHOUT ROWID;

CREATE INDEX initiator_ips_initiator ON initiator_ips (initiator_kind, initiator_id, ip_bin);

INSERT INTO initiator_ips (ip_bin, initiator_kind, initiator_id, n)
SELECT ip_bin, initiator_kind, COALESCE(initiator_id, ''), COUNT(*)
FROM events
WHERE ip_bin IS NOT NULL
GROUP BY 1, 2, 3;
