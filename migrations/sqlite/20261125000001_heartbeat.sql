-- A running verification's last sign of life (its progress is written every
-- 250 ms): on a database several servers share, one whose progress stopped
-- has lost its server and is given up, without touching another's.
ALTER TABLE chain_verifications ADD COLUMN heartbeat_at INTEGER NOT NULL DEFAULT 0;
