-- A digest's week runs from Monday 00:00 in the time zone of the admin who
-- subscribed (their browser's, when they subscribed); UTC for the
-- subscriptions made before.
ALTER TABLE alert_digests ADD COLUMN zone TEXT NOT NULL DEFAULT 'UTC';
