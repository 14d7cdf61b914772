#!/usr/bin/env bash
# The main job on a bundled example (fixtures/fleet: 7 images sharing a Debian base, 13
# revisions of real Debian closures under Nix rules), with the embedded default database
# (.hints/hints.db, SQLite): scan the history, learn hints from revisions 0..6 at nixpkgs'
# default budget, replay 6..12 against today's algorithms, layer one image, and say what the
# hint file saved; then write the HTML report (.hints/report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin hints
hints=target/release/hints
rm -f .hints/hints.db .hints/hints.db-wal .hints/hints.db-shm
$hints scan --dataset fixtures/fleet
$hints ls | head -n 4
$hints emit --range 0..6 --no-previous --out .hints/layer-hints.yaml
$hints validate .hints/layer-hints.yaml
$hints layer --graph fixtures/fleet/graphs/webstack/12.json --hints .hints/layer-hints.yaml --explain | head -n 12
$hints explain --hints .hints/layer-hints.yaml libssl3t64
$hints eval --hints .hints/layer-hints.yaml --range 6..12
$hints report --hints .hints/layer-hints.yaml --range 6..12 --out .hints/report.html
