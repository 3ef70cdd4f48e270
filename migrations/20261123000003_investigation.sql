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
