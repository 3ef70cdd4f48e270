#!/usr/bin/env bash
# Sets everything up and serves the dashboard on an embedded SQLite file
# filled with the demo data set (created on the first run).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

ensure_rust_tools
ensure_node_packages
ensure_pdf_fonts
build_release

export AUDITDECK_DATABASE_URL="${AUDITDECK_DATABASE_URL:-sqlite://data/demo.db}"
export AUDITDECK_DEMO_DATA="${AUDITDECK_DEMO_DATA:-true}"
export LEPTOS_ENV="${LEPTOS_ENV:-PROD}"
step "serving the demo (first start creates the demo data: about 10 s)"
exec target/release/auditdeck serve
