#!/usr/bin/env bash
# The test command: installs what the tests need, checks the house rules (formatting, clippy
# with warnings as errors, documentation without warnings), starts a throwaway PostgreSQL
# cluster for the store's PostgreSQL half, runs every test of the workspace, then each fuzz
# target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/house-rules.sh
pg=$(mktemp -d)
chmod 755 "$pg"
bash scripts/postgres.sh start "$pg/cluster" >/dev/null
trap 'bash scripts/postgres.sh stop "$pg/cluster"; rm -rf "$pg"' EXIT
HINTS_TEST_POSTGRES=$(cat "$pg/cluster/url") HINTS_TEST_POSTGRES_DIR="$pg/cluster" cargo test --workspace --locked
bash scripts/fuzz-smoke.sh 15
