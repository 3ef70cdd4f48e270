#!/usr/bin/env bash
# Sets everything up and runs every test: formatting, clippy (server and
# browser builds), the Rust tests, and the Playwright suite against a
# release build.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

ensure_rust_tools
ensure_nextest
ensure_node_packages
ensure_chromium
ensure_python3
ensure_pdf_fonts --tests

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy: server build"
cargo clippy --no-default-features --features ssr --all-targets -- -D warnings

step "clippy: browser build"
cargo clippy --no-default-features --features hydrate --target wasm32-unknown-unknown --lib -- -D warnings

# nextest with the profile of .config/nextest.toml: a test that hangs is
# terminated after four minutes.
run_rust_tests() {
  cargo nextest run --release --no-default-features --features ssr --no-fail-fast "$@"
}

step "Rust tests (SQLite)"
run_rust_tests

# The tests that compute with dates (retention, partitions, checkpoints,
# verification staleness, sign-in windows, export tickets, demo data, alert
# windows) again at instants that trip date arithmetic: the last microsecond
# of a year, the first of the next, a leap day, and clock changes in zones
# that have them
# (the process zone must not matter). The test apps' clocks read
# AUDITDECK_TEST_NOW; nothing reads today's date.
TIME_SENSITIVE='test(/^(integrity|partitions|alerts|charts)::/) | test(/^bulk::an_export_ticket/) | test(/^auth::the_failure_window/) | test(/^store::demo_load/)'
TEST_INSTANTS=(
  "UTC 2026-12-31T23:59:59.999999Z"
  "UTC 2027-01-01T00:00:00Z"
  "UTC 2028-02-29T12:00:00Z"
  "Europe/Berlin 2026-10-25T01:00:00Z"
  "America/New_York 2027-03-14T07:00:00Z"
)
run_at_instants() {
  local entry zone instant
  for entry in "${TEST_INSTANTS[@]}"; do
    read -r zone instant <<<"$entry"
    step "time-sensitive Rust tests at $instant ($zone)${1:+ on $1}"
    TZ="$zone" AUDITDECK_TEST_NOW="$instant" run_rust_tests --test api -E "$TIME_SENSITIVE"
  done
}
run_at_instants

# The database tests (tests/api: store, ingest, auth, export, deletion,
# integrity, partitions, two servers) again, each on a PostgreSQL database of
# its own.
if ensure_postgres; then
  step "Rust tests (PostgreSQL at ${TEST_DATABASE_URL})"
  AUDITDECK_TEST_BACKEND=postgres run_rust_tests --test api
  AUDITDECK_TEST_BACKEND=postgres run_at_instants PostgreSQL
elif [ "${CI:-}" = "true" ]; then
  echo "no PostgreSQL answers (set TEST_DATABASE_URL, or install one on 127.0.0.1:5432)" >&2
  exit 1
else
  step "no PostgreSQL answers: the PostgreSQL run is skipped (set TEST_DATABASE_URL to run it)"
fi

# Built after the Rust tests so the browser tests run cargo-leptos' own build.
build_release

# The PostgreSQL standby procedure of the README, on two clusters of its own
# (skipped with a notice where clusters cannot be made).
step "PostgreSQL standby: replica, failover, every acknowledged event"
bash "$ROOT/scripts/standby-test.sh" "$ROOT/target/release/auditdeck"

# The API against its OpenAPI document: schemathesis on a live server.
bash "$ROOT/scripts/api-contract.sh"

step "browser tests (Playwright, Chromium)"
E2E_DIR="$ROOT/target/e2e"
rm -rf "$E2E_DIR"
mkdir -p "$E2E_DIR"
export AUDITDECK_DATABASE_URL="sqlite://$E2E_DIR/e2e.db"
export AUDITDECK_DEMO_DATA=false
target/release/auditdeck demo --seed 7 --events 3000 --sessions 200
E2E_API_KEY="$(target/release/auditdeck create-api-key --label end2end | tail -n 1)"
export E2E_API_KEY
# One password for the three e2e users, new each run, passed by environment.
E2E_PASSWORD="e2e-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export E2E_PASSWORD
AUDITDECK_PASSWORD="$E2E_PASSWORD" target/release/auditdeck create-user \
  --username e2e-admin --email e2e-admin@auditdeck.example --name "Edna Admin" --role admin
AUDITDECK_PASSWORD="$E2E_PASSWORD" target/release/auditdeck create-user \
  --username e2e-auditor --email e2e-auditor@auditdeck.example --name "Ezra Auditor" --role auditor
AUDITDECK_PASSWORD="$E2E_PASSWORD" target/release/auditdeck create-user \
  --username e2e-viewer --email e2e-viewer@auditdeck.example --name "Eva Viewer" --role viewer
(cd "$ROOT/end2end" && npx playwright test)
