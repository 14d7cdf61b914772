#!/usr/bin/env bash
# The periodic job: scan the current images, re-learn the hint file against the checked-in one
# (hysteresis keeps its groups unless regrouping pays), and when the groups changed, commit the
# file on a branch with the `hints diff` summary as the message (and push it, for a pull request).
# Exits 0 with "no change" when nothing is worth proposing.
#
# usage: scripts/hints-update.sh [--hints layer-hints.yaml] [--db .hints/hints.db]
#          [--branch hints/update] [--push REMOTE] [--max-layers 100] [--range A..B]
#          [--flake FLAKE | NAME=INSTALLABLE ...]
# Run it at the top of the repository's work tree. `--flake .` scans the flake's image outputs
# (`hints scan --flake`); each NAME=INSTALLABLE is scanned with `hints scan --nix`; both at the
# current commit. HINTS names the hints binary (default: hints).
set -euo pipefail
hints=${HINTS:-hints}
file=layer-hints.yaml
db=.hints/hints.db
branch=hints/update
push=""
max_layers=100
range=""
flake=""
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hints) file=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --branch) branch=$2; shift 2 ;;
    --push) push=$2; shift 2 ;;
    --max-layers) max_layers=$2; shift 2 ;;
    --range) range=$2; shift 2 ;;
    --flake) flake=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *=*) images+=("$1"); shift ;;
    *) echo "hints-update: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$flake" ]; then
  "$hints" -q scan --db "$db" --flake "$flake"
fi
if [ ${#images[@]} -gt 0 ]; then
  args=()
  for i in "${images[@]}"; do args+=(--nix "$i"); done
  "$hints" -q scan --db "$db" "${args[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
had_file=false
if [ -f "$file" ]; then
  had_file=true
  cp "$file" "$work/previous.yaml"
fi
emit=("$hints" -q emit --db "$db" --max-layers "$max_layers" --out "$file" --summary "$work/summary.md")
[ -n "$range" ] && emit+=(--range "$range")
"${emit[@]}"

if $had_file && "$hints" diff --db "$db" "$work/previous.yaml" "$file" --json \
    | python3 -c 'import json,sys; sys.exit(1 if json.load(sys.stdin)["changes"]["changed"] else 0)'; then
  cp "$work/previous.yaml" "$file"
  echo "no change"
  exit 0
fi

git switch -q -C "$branch"
git add "$file"
{ echo "hints: update $file"; echo; cat "$work/summary.md"; } > "$work/message"
git commit -q -F "$work/message"
echo "committed $file on $branch"
if [ -n "$push" ]; then
  git push -q --force "$push" "$branch"
  echo "pushed $branch to $push"
fi
