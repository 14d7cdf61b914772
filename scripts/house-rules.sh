#!/usr/bin/env bash
# The house rules, enforced: rustfmt at the width in rustfmt.toml (the workspace and fuzz/),
# clippy on every target with warnings as errors, and rustdoc without warnings (the library
# crates also warn on missing docs, which -D warnings makes errors). The fuzz targets are built
# by scripts/fuzz-smoke.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
(cd fuzz && cargo fmt --check)
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
