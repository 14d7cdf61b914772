#!/usr/bin/env bash
# Writes docs/report.png: the report of the bundled example (fixtures/fleet; hints learned from
# 0..6, replayed over 6..12, against a file learned from 0..3), as headless Chromium shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin hints
hints=target/release/hints
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$hints -q scan --db "$work/h.db" --dataset fixtures/fleet
$hints -q emit --db "$work/h.db" --range 0..6 --no-previous --out "$work/layer-hints.yaml"
$hints -q emit --db "$work/h.db" --range 0..3 --no-previous --out "$work/previous.yaml"
(cd "$work" && "$OLDPWD/$hints" report --db h.db --hints layer-hints.yaml --previous previous.yaml --range 6..12 --out report.html)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --hide-scrollbars \
  --window-size=1280,2300 --screenshot="$PWD/docs/report.png" "file://$work/report.html" 2>/dev/null
echo "wrote docs/report.png"
