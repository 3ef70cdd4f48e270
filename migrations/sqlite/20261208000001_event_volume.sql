-- How many events of each action every quarter of an hour (UTC, from the
-- epoch) holds, kept by the store in the transaction that inserts or removes
-- the events, as event_combos is. Every time zone's offset is a whole number
-- of quarter hours, so a calendar bucket of 15 minutes or more (an hour, a
-- day in any zone) is a run of whole quarters: the activity chart and the
-- Overview sum these rows instead of reading the log.
CREATE TABLE event_volume (
    quarter INTEGER NOT NULL,
    action  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (quarter, action)
) WITHOUT ROWID;

INSERT INTO event_volume (quarter, action, n)
SELECT occurred_at - ((occurred_at % 900000000) + 900000000) % 900000000, action, COUNT(*)
FROM events
GROUP BY 1, 2;
