#!/usr/bin/env bash
# The store backends on the 10,000-snapshot synthetic history (20 images x 500 revisions, the
# history `hints-bench scan` builds), in the same run: ingest into SQLite and into PostgreSQL
# (a throwaway cluster on loopback, scripts/postgres.sh), then emit from each; the two hint
# files must be byte-identical. Targets: PostgreSQL ingest <= 2x SQLite's, emit <= 1.5x.
# Usage: bench/postgres.sh [IMAGES REVISIONS]   (run as root: the cluster runs as `postgres`)
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-20}
revisions=${2:-500}
cargo build --release --locked --bin hints-bench >/dev/null
B=target/release/hints-bench
work=$(mktemp -d)
chmod 755 "$work"
bash scripts/postgres.sh start "$work/pg" >/dev/null
trap 'bash scripts/postgres.sh stop "$work/pg"; rm -rf "$work"' EXIT
url=$(cat "$work/pg/url")
seconds() { grep -E "^$1" | sed -E 's/.*: ([0-9.]+).*/\1/' | tail -1; }
echo "== ingest: $images images x $revisions revisions"
$B scan --images "$images" --revisions "$revisions" --db "$work/h.db" | tee "$work/sqlite-scan"
$B scan --images "$images" --revisions "$revisions" --db "$url" | tee "$work/pg-scan"
echo "== emit"
$B emit --db "$work/h.db" --out "$work/sqlite.yaml" | tee "$work/sqlite-emit"
$B emit --db "$url" --out "$work/pg.yaml" | tee "$work/pg-emit"
cmp "$work/sqlite.yaml" "$work/pg.yaml" && echo "hint files: byte-identical"
si=$(seconds "seconds" <"$work/sqlite-scan"); pi=$(seconds "seconds" <"$work/pg-scan")
se=$(grep -E "^load seconds" "$work/sqlite-emit" | sed -E 's/.*total: ([0-9.]+).*/\1/')
pe=$(grep -E "^load seconds" "$work/pg-emit" | sed -E 's/.*total: ([0-9.]+).*/\1/')
sl=$(grep -E "^load seconds" "$work/sqlite-emit" | sed -E 's/load seconds: ([0-9.]+),.*/\1/')
pl=$(grep -E "^load seconds" "$work/pg-emit" | sed -E 's/load seconds: ([0-9.]+),.*/\1/')
python3 - "$si" "$pi" "$se" "$pe" "$sl" "$pl" <<'PY'
import sys
si, pi, se, pe, sl, pl = map(float, sys.argv[1:])
print(f"ingest: SQLite {si:.1f} s, PostgreSQL {pi:.1f} s: {pi / si:.2f}x (target <= 2x)")
print(f"emit:   SQLite {se:.1f} s, PostgreSQL {pe:.1f} s: {pe / se:.2f}x (target <= 1.5x); loading alone {sl:.1f} s against {pl:.1f} s")
PY
