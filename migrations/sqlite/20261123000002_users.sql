-- People who sign in to Auditdeck. Passwords are Argon2id PHC strings.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'auditor', 'admin')),
    password_hash TEXT NOT NULL,
    disabled_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Failed sign-ins, for rate limiting per account and per IP. Kept in the
-- database so that several servers share the count.
CREATE TABLE login_failures (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    username   TEXT NOT NULL COLLATE NOCASE,
    ip         TEXT NOT NULL,
    failed_at  INTEGER NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username, failed_at);
CREATE INDEX login_failures_ip ON login_failures (ip, failed_at);
