-- Sorting by a column walks an index over (column, occurred_at, id), all
-- ascending, so a page is a seek in either direction (ties by time, then id,
-- the same way). The filter indexes of action, table and IP become such
-- indexes, and the initiator's name gets one.
DROP INDEX IF EXISTS events_action;
CREATE INDEX events_action ON events (action, occurred_at, id);
DROP INDEX IF EXISTS events_table;
CREATE INDEX events_table ON events (table_name, occurred_at, id);
DROP INDEX IF EXISTS events_ip;
CREATE INDEX events_ip ON events (ip_bin, occurred_at, id);
CREATE INDEX events_user_sort ON events (initiator_name, occurred_at, id);
