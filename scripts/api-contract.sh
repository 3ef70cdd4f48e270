#!/usr/bin/env bash
# The API against its own OpenAPI document, by a tool nobody here wrote:
# schemathesis (from PyPI) generates requests from /api/v1/openapi.json (valid
# ones and broken ones), sends them to a live release server on a demo
# database, and fails on any 500 and any answer the document does not
# describe (status, content type, headers, body schema).
#
# Needs the release build (target/release/auditdeck). Bounded: a fixed number
# of cases per operation, a fixed seed and a time budget.
#
# One worker: with two, hypothesis parses its strategies' sources in two
# threads at once, and CPython 3.11 (the machine's 3.11.7 and
# Debian's 3.11.2) then fails with "AST constructor recursion depth mismatch"
# (CPython gh-106905), an error of the tool, not of the server. The fuzzing
# phase runs to its time budget either way.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

SCHEMATHESIS_VERSION="4.32.5"
CONTRACT_PORT="${CONTRACT_PORT:-3400}"
CONTRACT_DIR="$ROOT/target/api-contract"
VENV="$ROOT/target/schemathesis-venv"

ensure_schemathesis() {
  if "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  step "installing schemathesis $SCHEMATHESIS_VERSION (PyPI, into target/schemathesis-venv)"
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

ensure_schemathesis

step "API contract: schemathesis against a live server"
rm -rf "$CONTRACT_DIR"
mkdir -p "$CONTRACT_DIR"
export AUDITDECK_DATABASE_URL="sqlite://$CONTRACT_DIR/contract.db"
export AUDITDECK_DEMO_DATA=false
# The rate limit is tested by the Rust tests; here it would only slow the run.
export AUDITDECK_API_READS_PER_MINUTE=1000000
target/release/auditdeck demo --seed 11 --events 500 --sessions 100 >/dev/null
KEY="$(target/release/auditdeck create-api-key --label schemathesis \
  --scope events:write,events:read,sessions:read | tail -n 1)"

LEPTOS_SITE_ADDR="127.0.0.1:$CONTRACT_PORT" target/release/auditdeck serve \
  >"$CONTRACT_DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT

status=0
"$VENV/bin/st" --no-color run "http://127.0.0.1:$CONTRACT_PORT/api/v1/openapi.json" \
  --wait-for-schema 60 \
  --header "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples 60 \
  --seed 20261203 \
  --max-time 180 \
  --workers 1 \
  --request-timeout 10 \
  --report junit --report-dir "$CONTRACT_DIR" || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis found answers that break the document (status $status); the server's log:" >&2
  tail -n 50 "$CONTRACT_DIR/server.log" >&2
fi
exit "$status"
