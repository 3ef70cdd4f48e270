-- Admin Sessions sorts by any column and searches through an index.
--
-- Sorting: each column has an index over (column, occurred_at, id), so a
-- page in either direction is a seek (ties by time, then id, the same way).
-- An IP sorts as an address: its 16-byte key (IPv4 mapped into IPv6), empty
-- when the request had none. Rows recorded before this migration get their
-- key when the server starts (the partial index lists them).
ALTER TABLE admin_sessions ADD COLUMN ip_bin BYTEA NOT NULL DEFAULT '\x';
CREATE INDEX admin_sessions_ip_pending ON admin_sessions (id) WHERE ip IS NOT NULL AND ip_bin = '\x';

DROP INDEX IF EXISTS admin_sessions_occurred;
CREATE INDEX admin_sessions_occurred ON admin_sessions (occurred_at, id);
CREATE INDEX admin_sessions_sort_admin ON admin_sessions (user_name, occurred_at, id);
CREATE INDEX admin_sessions_sort_ip ON admin_sessions (ip_bin, occurred_at, id);
CREATE INDEX admin_sessions_sort_url ON admin_sessions (url, occurred_at, id);
CREATE INDEX admin_sessions_sort_type ON admin_sessions (kind, occurred_at, id);
CREATE INDEX admin_sessions_sort_method ON admin_sessions (method, occurred_at, id);
CREATE INDEX admin_sessions_sort_status ON admin_sessions (status, occurred_at, id);
CREATE INDEX admin_sessions_sort_duration ON admin_sessions (duration_us, occurred_at, id);

-- Search: every word must appear in the admin's name or email, the URL or
-- the IP, anywhere in it, case aside: a trigram index (pg_trgm, a trusted
-- extension) over the four, joined by a separator no word contains.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX admin_sessions_search ON admin_sessions USING gin (
    (user_name || chr(31) || user_email || chr(31) || url || chr(31) || COALESCE(ip, '')) gin_trgm_ops
);
