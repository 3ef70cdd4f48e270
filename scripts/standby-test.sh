#!/usr/bin/env bash
# The PostgreSQL standby procedure of the README, checked end to end on this
# machine: a primary and a streaming replica (pg_basebackup -R) as two
# clusters of their own (the shared server on 5432 is not touched), Auditdeck
# serving and ingesting on the primary while the replica follows, then the
# replica promoted and Auditdeck pointed at it: every acknowledged event is
# there, the chain verifies through the checkpoints taken on the primary,
# and Auditdeck takes new events on it.
#
# Skipped with a notice where clusters cannot be made (no Debian
# postgresql-common, or not root). Usage: scripts/standby-test.sh [BINARY]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/auditdeck}"
PRIMARY=auditdeck_test_primary
STANDBY=auditdeck_test_standby
PRIMARY_PORT="${STANDBY_TEST_PRIMARY_PORT:-5441}"
STANDBY_PORT="${STANDBY_TEST_STANDBY_PORT:-5442}"
HTTP_PORT="${STANDBY_TEST_HTTP_PORT:-3341}"

say() { printf '\n==> standby: %s\n' "$*"; }
skip() {
  echo "standby test skipped: $*"
  exit 0
}
fail() {
  echo "standby test FAILED: $*" >&2
  exit 1
}

command -v pg_createcluster >/dev/null 2>&1 || skip "no pg_createcluster (Debian's postgresql-common)"
command -v pg_basebackup >/dev/null 2>&1 || skip "no pg_basebackup"
[ "$(id -u)" = 0 ] || skip "making clusters needs root"
[ -x "$BIN" ] || fail "no Auditdeck binary at $BIN (build it first)"
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
WORK="$(mktemp -d)"
SERVER_PID=""

cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  pg_dropcluster --stop "$VERSION" "$STANDBY" >/dev/null 2>&1 || true
  pg_dropcluster --stop "$VERSION" "$PRIMARY" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
WORK="$(mktemp -d)"

psql_at() { psql -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atc "$2"; }
wait_for() { # seconds, command...
  local n="$1"
  shift
  for _ in $(seq 1 "$((n * 4))"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}
trust_hba() {
  cat >"/etc/postgresql/$VERSION/$1/pg_hba.conf" <<'EOF'
local all         all                trust
host  all         all 127.0.0.1/32   trust
local replication all                trust
host  replication all 127.0.0.1/32   trust
EOF
}

say "primary cluster $VERSION/$PRIMARY on port $PRIMARY_PORT"
pg_createcluster "$VERSION" "$PRIMARY" -p "$PRIMARY_PORT" >/dev/null
trust_hba "$PRIMARY"
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$PRIMARY" start
wait_for 20 psql_at "$PRIMARY_PORT" "SELECT 1" || fail "the primary does not start"

say "replica $VERSION/$STANDBY on port $STANDBY_PORT: pg_basebackup -R from the primary"
pg_createcluster "$VERSION" "$STANDBY" -p "$STANDBY_PORT" >/dev/null
trust_hba "$STANDBY"
STANDBY_DATA="/var/lib/postgresql/$VERSION/$STANDBY"
find "$STANDBY_DATA" -mindepth 1 -delete
su postgres -c "pg_basebackup -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -D $STANDBY_DATA -R -X stream -c fast"
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$STANDBY" start
wait_for 20 psql_at "$STANDBY_PORT" "SELECT 1" || fail "the replica does not start"
[ "$(psql_at "$STANDBY_PORT" "SELECT pg_is_in_recovery()")" = "t" ] || fail "the replica is not in recovery"

PRIMARY_URL="postgres://postgres@127.0.0.1:$PRIMARY_PORT/postgres"
STANDBY_URL="postgres://postgres@127.0.0.1:$STANDBY_PORT/postgres"
export AUDITDECK_DEMO_DATA=false AUDITDECK_LOG=warn LEPTOS_SITE_ADDR="127.0.0.1:$HTTP_PORT"
export AUDITDECK_DATABASE_URL="$PRIMARY_URL"

say "Auditdeck on the primary: serving, and ingesting while the replica follows"
"$BIN" migrate >/dev/null
KEY="$("$BIN" create-api-key --label standby-test --scope events:write,events:read | tail -n 1)"
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE="http://127.0.0.1:$HTTP_PORT"
wait_for 30 curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" "$BASE/api/v1/events?limit=1" ||
  fail "Auditdeck does not answer on the primary: $(tail -n 5 "$WORK/server.log")"
ACKED=0
for b in $(seq 1 40); do
  body='['
  for i in $(seq 1 50); do
    [ "$i" -gt 1 ] && body+=','
    body+="{\"action\":\"UPDATE\",\"initiator\":{\"kind\":\"user\",\"id\":\"u$i\",\"name\":\"User $i\"},\"ip\":\"198.51.100.$i\",\"table\":\"invoices\",\"primary_key\":\"$b-$i\",\"description\":\"standby batch $b event $i\"}"
  done
  body+=']'
  code="$(curl -sS -o "$WORK/answer.json" -w '%{http_code}' -X POST "$BASE/api/v1/events" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data "$body")"
  case "$code" in
  2*) ACKED=$((ACKED + 50)) ;;
  *) fail "ingest answered $code: $(cat "$WORK/answer.json")" ;;
  esac
  # Reads go on being served from the primary meanwhile.
  if [ $((b % 10)) = 0 ]; then
    curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" "$BASE/api/v1/events?limit=100" ||
      fail "a read on the primary failed"
  fi
done
PRIMARY_EVENTS="$(psql_at "$PRIMARY_PORT" "SELECT COUNT(*) FROM events WHERE description LIKE 'standby batch %'")"
[ "$PRIMARY_EVENTS" = "$ACKED" ] || fail "$ACKED events acknowledged but $PRIMARY_EVENTS stored on the primary"
AUDITDECK_LOG=error "$BIN" checkpoints --new >"$WORK/checkpoints.jsonl"
echo "acknowledged $ACKED events; $(wc -l <"$WORK/checkpoints.jsonl") checkpoint(s) kept aside"

say "the replica catches up"
LSN="$(psql_at "$PRIMARY_PORT" "SELECT pg_current_wal_lsn()")"
caught_up() {
  [ "$(psql_at "$STANDBY_PORT" "SELECT pg_last_wal_replay_lsn() >= '$LSN'::pg_lsn")" = "t" ]
}
wait_for 60 caught_up || fail "the replica did not replay up to $LSN"
REPLICA_EVENTS="$(psql_at "$STANDBY_PORT" "SELECT COUNT(*) FROM events WHERE description LIKE 'standby batch %'")"
[ "$REPLICA_EVENTS" = "$ACKED" ] || fail "the replica holds $REPLICA_EVENTS of $ACKED events"
echo "the replica holds all $REPLICA_EVENTS events (replayed up to $LSN)"

say "the primary is lost: Auditdeck stops, the replica is promoted"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$PRIMARY" stop -m immediate
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$STANDBY" promote
not_in_recovery() { [ "$(psql_at "$STANDBY_PORT" "SELECT pg_is_in_recovery()")" = "f" ]; }
wait_for 30 not_in_recovery || fail "the replica was not promoted"

say "Auditdeck pointed at the promoted replica"
export AUDITDECK_DATABASE_URL="$STANDBY_URL"
"$BIN" verify --checkpoints "$WORK/checkpoints.jsonl" || fail "the chain does not verify on the promoted replica"
"$BIN" serve >"$WORK/server2.log" 2>&1 &
SERVER_PID=$!
wait_for 30 curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" "$BASE/api/v1/events?limit=1" ||
  fail "Auditdeck does not answer on the promoted replica: $(tail -n 5 "$WORK/server2.log")"
code="$(curl -sS -o "$WORK/answer.json" -w '%{http_code}' -X POST "$BASE/api/v1/events" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  --data '[{"action":"LOGIN","initiator":{"kind":"user","id":"u1","name":"User 1"},"description":"after the failover"}]')"
case "$code" in 2*) ;; *) fail "ingest on the promoted replica answered $code: $(cat "$WORK/answer.json")" ;; esac
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
"$BIN" verify --checkpoints "$WORK/checkpoints.jsonl" >/dev/null || fail "the chain does not verify after new events"
say "passed: $ACKED acknowledged events on the promoted replica, chain intact through the primary's checkpoints"
