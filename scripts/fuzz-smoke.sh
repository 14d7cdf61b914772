#!/usr/bin/env bash
# Builds every fuzz target (fuzz/, cargo-fuzz on the nightly toolchain) and runs each for a
# short time on a copy of its seed corpus, so the targets keep building and the seeds keep
# passing. The smoke run builds without optimisation (--dev), which compiles in a quarter of
# the time; long campaigns build optimised: `cargo +nightly fuzz run -O TARGET WORKDIR
# fuzz/corpus/TARGET`. Without nightly (outside CI) the targets are only type-checked.
# Usage: scripts/fuzz-smoke.sh [SECONDS per target, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then echo "fuzz smoke: no nightly toolchain (CI needs one)" >&2; exit 1; fi
  echo "fuzz smoke: no nightly toolchain here, type-checking the targets only"
  cd fuzz && exec cargo check --bins
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked -q
cd fuzz
cargo +nightly fuzz build --dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$work/$target"
  cargo +nightly fuzz run --dev "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|Done)' | sed "s/^/fuzz $target: /"
done
