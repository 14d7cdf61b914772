#!/usr/bin/env bash
# The main job on the bundled example (fixtures/example: 6 images x 13 revisions of real Debian
# closures under Nix rules), with the embedded default database (.hints/hints.db, SQLite):
# scan the history, learn hints from revisions 0..6, replay 6..12, and layer one image.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin hints
hints=target/release/hints
rm -f .hints/hints.db .hints/hints.db-wal .hints/hints.db-shm
$hints scan --dataset fixtures/example | tail -n 1
$hints ls | head -n 4
$hints emit --range 0..6 --max-layers 30 --out .hints/layer-hints.yaml
$hints validate .hints/layer-hints.yaml
$hints eval --hints .hints/layer-hints.yaml --range 6..12 --max-layers 30
$hints layer --graph fixtures/example/graphs/python3/12.json --hints .hints/layer-hints.yaml --max-layers 30 --explain | head -n 12
$hints explain --hints .hints/layer-hints.yaml libssl3t64
