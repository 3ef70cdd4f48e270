-- One address's events newest first straight from the index (an IP filter
-- no longer sorts every event of a busy address).
DROP INDEX events_ip;
CREATE INDEX events_ip ON events (ip_bin, occurred_at DESC, id DESC);
