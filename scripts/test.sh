#!/usr/bin/env bash
# The test command: installs what the tests need, checks the house rules (formatting, clippy
# with warnings as errors, documentation without warnings), runs every test of the workspace,
# then each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/house-rules.sh
cargo test --workspace --locked
bash scripts/fuzz-smoke.sh 15
