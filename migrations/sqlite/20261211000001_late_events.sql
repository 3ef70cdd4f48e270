-- The events that arrived after a later one (a backfill, a delayed
-- delivery): those whose time is before the latest time inserted up to them.
-- A newest-first keyword read of a range with an end starts at the range's
-- end and looks these up on their own (store::events::RangeEnd), rather
-- than walking the whole range in the time index to find them. A log that
-- arrives in time order leaves it empty; each late event costs one entry.
CREATE INDEX events_late ON events (occurred_at) WHERE occurred_at < max_occurred_at;
