-- Alerts: rules evaluated as events are stored, and the alerts they fired.
-- Rules read the log from one cursor (the last event id evaluated), held by
-- one server at a time (the lease), so a restart neither loses nor repeats
-- an alert and several servers never evaluate the same event twice.
CREATE TABLE alert_rules (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    -- info, warning or critical
    severity        TEXT NOT NULL,
    -- match, threshold, new_ip or off_hours
    kind            TEXT NOT NULL,
    -- The Activity Log's filters, as its query string (action=DELETE&table=users).
    filter          TEXT NOT NULL DEFAULT '',
    -- Threshold: at least `threshold` matching events within `window_minutes`.
    -- Every kind: firings of one group within `window_minutes` of an alert's
    -- first event count into that alert.
    threshold       INTEGER NOT NULL DEFAULT 1,
    window_minutes  INTEGER NOT NULL DEFAULT 60,
    -- '' (one group), initiator or ip
    group_by        TEXT NOT NULL DEFAULT '',
    -- New IP: not seen for the initiator in the last `lookback_days`, compared
    -- as an address (prefix 32 / 128) or a network (24 / 48).
    lookback_days   INTEGER NOT NULL DEFAULT 30,
    network         TEXT NOT NULL DEFAULT 'address',
    -- Off hours: working days (Monday = 1 … Sunday = 64, summed) and hours
    -- (minutes after midnight, start inclusive, end exclusive) in `zone`.
    work_days       INTEGER NOT NULL DEFAULT 31,
    work_start      INTEGER NOT NULL DEFAULT 540,
    work_end        INTEGER NOT NULL DEFAULT 1080,
    zone            TEXT NOT NULL DEFAULT 'UTC',
    -- Where new alerts are also sent: a stream's destination (a signed or a
    -- Slack-compatible webhook), or nowhere but the inbox.
    stream_id       INTEGER REFERENCES streams (id) ON DELETE SET NULL,
    -- active or paused
    state           TEXT NOT NULL DEFAULT 'active',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY,
    -- The rule as it was when it fired (a deleted rule's alerts stay).
    rule_id         INTEGER REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name       TEXT NOT NULL,
    severity        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    filter          TEXT NOT NULL DEFAULT '',
    group_by        TEXT NOT NULL DEFAULT '',
    -- The initiator (kind:id), the IP or network, or '' for the whole rule.
    group_key       TEXT NOT NULL DEFAULT '',
    first_event_id  INTEGER NOT NULL,
    last_event_id   INTEGER NOT NULL,
    first_at        INTEGER NOT NULL,
    last_at         INTEGER NOT NULL,
    events          INTEGER NOT NULL,
    -- open, acknowledged or resolved
    state           TEXT NOT NULL DEFAULT 'open',
    acknowledged_by TEXT,
    acknowledged_at INTEGER,
    resolved_by     TEXT,
    resolved_at     INTEGER,
    -- Sending a new alert to its rule's stream: at least once, retried with
    -- the streams' backoff until the destination takes it.
    notify_stream_id INTEGER,
    notified_at     INTEGER,
    notify_failures INTEGER NOT NULL DEFAULT 0,
    notify_next_at  INTEGER NOT NULL DEFAULT 0,
    notify_error    TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX alerts_newest ON alerts (id DESC);
CREATE INDEX alerts_by_group ON alerts (rule_id, group_key, id);
CREATE INDEX alerts_open ON alerts (state) WHERE state = 'open';
CREATE INDEX alerts_to_notify ON alerts (id) WHERE notify_stream_id IS NOT NULL AND notified_at IS NULL;

-- The evaluator: the last event id evaluated and who evaluates.
CREATE TABLE alert_evaluator (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    cursor_id       INTEGER NOT NULL,
    lease_holder    TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0
);
-- Alerts start from the log's head: rules look forward.
INSERT INTO alert_evaluator (id, cursor_id) SELECT 1, COALESCE(MAX(id), 0) FROM events;
