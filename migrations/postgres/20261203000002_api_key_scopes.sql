-- What each API key may do: space-separated scopes (events:write,
-- events:read, sessions:read). The keys made before scopes send events.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'events:write';
