-- Admin Sessions sorts by any column and searches through an index.
--
-- Sorting: each column has an index over (column, occurred_at, id), all
-- ascending, so a page in either direction is a seek (ties by time, then
-- id, the same way). An IP sorts as an address: its 16-byte key (IPv4 mapped
-- into IPv6), empty when the request had none. Rows recorded before this
-- migration get their key when the server starts (the partial index lists
-- them, and is empty from then on).
ALTER TABLE admin_sessions ADD COLUMN ip_bin BLOB NOT NULL DEFAULT x'';
CREATE INDEX admin_sessions_ip_pending ON admin_sessions (id) WHERE ip IS NOT NULL AND ip_bin = x'';

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
-- the IP, anywhere in it (not only at a word's start), case aside. A trigram
-- index answers that for words of three characters or more.
CREATE VIRTUAL TABLE admin_sessions_fts USING fts5 (
    user_name,
    user_email,
    url,
    ip,
    content = 'admin_sessions',
    content_rowid = 'id',
    tokenize = 'trigram'
);
INSERT INTO admin_sessions_fts (admin_sessions_fts) VALUES ('rebuild');

CREATE TRIGGER admin_sessions_fts_insert AFTER INSERT ON admin_sessions BEGIN
    INSERT INTO admin_sessions_fts (rowid, user_name, user_email, url, ip)
    VALUES (new.id, new.user_name, new.user_email, new.url, new.ip);
END;

CREATE TRIGGER admin_sessions_fts_delete AFTER DELETE ON admin_sessions BEGIN
    INSERT INTO admin_sessions_fts (admin_sessions_fts, rowid, user_name, user_email, url, ip)
    VALUES ('delete', old.id, old.user_name, old.user_email, old.url, old.ip);
END;

CREATE TRIGGER admin_sessions_fts_update AFTER UPDATE OF user_name, user_email, url, ip ON admin_sessions BEGIN
    INSERT INTO admin_sessions_fts (admin_sessions_fts, rowid, user_name, user_email, url, ip)
    VALUES ('delete', old.id, old.user_name, old.user_email, old.url, old.ip);
    INSERT INTO admin_sessions_fts (rowid, user_name, user_email, url, ip)
    VALUES (new.id, new.user_name, new.user_email, new.url, new.ip);
END;
