-- Streams: destinations Auditdeck delivers its events to. Each has a cursor
-- (the last event id the destination acknowledged): delivery is in id order
-- from the cursor, so the backlog of a destination that is down waits in
-- the log itself and nothing is lost. One server at a time delivers a
-- stream: it holds the lease (holder, until), renewed while it works and
-- taken over by another server once it has run out.
CREATE TABLE streams (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    -- webhook, slack, splunk_hec or syslog
    kind            TEXT NOT NULL,
    url             TEXT NOT NULL,
    -- The Activity Log's filters, as its query string (action=DELETE&table=users).
    filter          TEXT NOT NULL DEFAULT '',
    -- active or paused
    state           TEXT NOT NULL DEFAULT 'active',
    cursor_id       INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_error_at   INTEGER,
    last_status     INTEGER,
    delivered       INTEGER NOT NULL DEFAULT 0,
    lease_holder    TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
