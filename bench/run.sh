#!/usr/bin/env bash
# Prints every benchmark figure the README quotes (the service's and PostgreSQL's too). Optional: NIXPKGS_PY=DIR holding nixpkgs'
# closure-graph.py and auto-layer.py, unmodified, for the ratio to the originals.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins
B=target/release/hints-bench
H=target/release/hints
echo "== $(date -u +%FT%TZ) on $(nproc) cores"
$B match
$B layer ${NIXPKGS_PY:+--python "$NIXPKGS_PY"}
$B shapes ${NIXPKGS_PY:+--python "$NIXPKGS_PY"}
$B scan
$B emit
$B wide
echo "bench: hints report on the 10,000-snapshot history (whole command, last 10 updates)"
/usr/bin/time -f "seconds: %e, peak memory: %M KB" $H -q report --db /tmp/hints-bench.db --hints /tmp/hints-bench.yaml --out /tmp/hints-bench-report.html
echo "report bytes: $(stat -c %s /tmp/hints-bench-report.html)"
if [ -d ../shared/data/dev-history ]; then
  $B dataset ../shared/data/dev-history --db /tmp/hints-bench-dev.db
  rm -f /tmp/hints-bench-dev.yaml
  $H -q emit --db /tmp/hints-bench-dev.db --range 0..6 --out /tmp/hints-bench-dev.yaml
  $B eval /tmp/hints-bench-dev.db /tmp/hints-bench-dev.yaml --range 6..12
fi
$B serve
if [ -d ../shared/data/dev-history ]; then
  $B serve --clients 4 --per-client 5 --dataset ../shared/data/dev-history
fi
# The store backends (a throwaway PostgreSQL cluster; as root).
bash bench/postgres.sh
