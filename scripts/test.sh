#!/usr/bin/env bash
# The test command: installs what the tests need, runs every test of the workspace, then each
# fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked
bash scripts/fuzz-smoke.sh 15
