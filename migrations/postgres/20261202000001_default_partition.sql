-- Events of a month that has no partition yet land here instead of making
-- one inside the insert transaction (creating a partition waits for every
-- reader of `events`; inside the writer's transaction that stalled ingest and
-- every page behind a long export). Maintenance moves them into their month's
-- partition when no reader is in the way (see store/partitions.rs).
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
