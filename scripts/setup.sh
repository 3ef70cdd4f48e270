# Sourced by scripts/serve.sh and scripts/test.sh: installs what is missing,
# skips what is there. Everything comes from crates.io, npm or Debian's apt.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_LEPTOS_VERSION="0.3.11"
WASM_BINDGEN_VERSION="0.2.130"

# npm's binaryen (wasm-opt) first: Debian's is too old and breaks hydration.
export PATH="$ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

ensure_rust_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes, once)"
    cargo install --locked --ignore-rust-version cargo-leptos --version "$CARGO_LEPTOS_VERSION"
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    # Not --locked: its lockfile pins a crate version the registry lacks.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  fi
}

# The Rust tests run under cargo-nextest (its profile stops a hung test).
ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
}

ensure_node_packages() {
  if ! command -v npm >/dev/null; then
    step "installing Node.js and npm"
    apt_install nodejs npm
  fi
  local stamp="$ROOT/end2end/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ROOT/end2end/package-lock.json" -nt "$stamp" ]; then
    step "installing the npm packages of end2end/"
    (cd "$ROOT/end2end" && npm ci --no-audit --no-fund)
  fi
}

APT_UPDATED=""
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  if [ -z "$APT_UPDATED" ]; then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    step "installing Debian's Chromium for the browser tests"
    apt_install chromium
  fi
}

# The PDF report finds its fonts on the system: DejaVu Sans (Latin, Greek,
# Cyrillic, Hebrew, Arabic, symbols), Droid Sans Fallback (Chinese,
# Japanese) and NanumGothic (Korean). The tests read the PDFs back with poppler's pdftotext.
ensure_pdf_fonts() {
  local missing=()
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  [ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || missing+=(fonts-droid-fallback)
  [ -f /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] || missing+=(fonts-nanum)
  if [ "${1:-}" = "--tests" ] && ! command -v pdftotext >/dev/null 2>&1; then
    missing+=(poppler-utils)
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]} (fonts for the PDF report)"
    apt_install "${missing[@]}"
  fi
}

# The integrity browser test edits the database behind the server's back
# with Python's sqlite3 module.
ensure_python3() {
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import sqlite3' >/dev/null 2>&1; then
    step "installing Python 3 (for the integrity browser test)"
    apt_install python3
  fi
}

# The PostgreSQL the Rust tests run on a second time: TEST_DATABASE_URL when
# set, else this machine's own (started when installed and down). Sets
# TEST_DATABASE_URL when one answers; returns 1 when none does.
LOCAL_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
ensure_postgres() {
  if [ -z "${TEST_DATABASE_URL:-}" ] && command -v pg_lsclusters >/dev/null 2>&1; then
    local version cluster port status
    while read -r version cluster port status _; do
      if [ "$status" = "down" ]; then
        step "starting the local PostgreSQL ($version/$cluster)"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
      fi
    done < <(pg_lsclusters --no-header 2>/dev/null)
  fi
  local url="${TEST_DATABASE_URL:-$LOCAL_POSTGRES_URL}"
  local tries=0
  until postgres_answers "$url"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then
      return 1
    fi
    sleep 0.5
  done
  export TEST_DATABASE_URL="$url"
  drop_stale_test_databases "$url"
}

# Whether a PostgreSQL server takes connections at the URL's host and port.
postgres_answers() {
  local rest="${1#*://}"
  rest="${rest#*@}"
  local hostport="${rest%%/*}"
  local host="${hostport%%:*}"
  local port="5432"
  if [ "$hostport" != "$host" ]; then port="${hostport##*:}"; fi
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port"
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

# Databases a test run stopped short of dropping.
drop_stale_test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  local name
  for name in $(psql "$1" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'auditdeck_test_%'" 2>/dev/null); do
    psql "$1" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

build_release() {
  step "building the release (server + wasm)"
  # --split: each page's code in its own chunk; --precompress: brotli and
  # gzip files beside each asset, served as they are.
  #
  # The browser build is made with the checkout's and Cargo's folders
  # written as fixed names: file paths end up in the code (panic locations),
  # so without this the bundle's size (and the first-visit test's ceilings)
  # would depend on where the project was cloned. The server build keeps
  # build.rustflags from .cargo/config.toml; this repeats the one flag the
  # two builds must share.
  local cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--cfg erase_components --remap-path-prefix=$ROOT=/auditdeck --remap-path-prefix=$cargo_home=/cargo" \
    cargo leptos build --release --split --precompress
}
