#!/usr/bin/env bash
# Generalisation check: the dev history plus five histories `hints` was never tuned on, built
# with ../shared/tools/deb2nix.py from the Debian indices in ../shared/data/debian (other seeds,
# other suites, other images). For each: learn from the first half, replay the second half,
# at 100 and 30 layers; print size-first and hints, then the mean ratios to the floor.
# Usage: bench/generalization.sh [WORKDIR]   (default /tmp/hints-generalization)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/hints-generalization}
SHARED=../shared
cargo build --release --locked --bins -q
H=$PWD/target/release/hints
mkdir -p "$W"
build() { # name history seed images...
  local name=$1 history=$2 seed=$3; shift 3
  [ -f "$W/$name/manifest.json" ] && return
  local args=(); for i in "$@"; do args+=(--image "$i"); done
  python3 "$SHARED/tools/deb2nix.py" build --data "$SHARED/data/debian" --history "$history" --set dev --seed "$seed" "${args[@]}" --out "$W/$name" >/dev/null 2>&1
}
DEVBOX='devbox=build-essential,git,python3,nodejs,ruby,perl,curl,vim,tmux,openssh-client'
WEBSTACK='webstack=nginx,postgresql,redis-server,php-cli,python3-django,nodejs'
SCIENCE='science=python3-numpy,python3-scipy,python3-matplotlib,python3-pandas,python3-sklearn,python3-notebook|jupyter-notebook'
SECURITY='bookworm,bookworm+bookworm-updates,~10,bookworm+bookworm-updates+bookworm-security'
build v1 'trixie,~12,forky' 2 "$DEVBOX" 'mailsrv=postfix,dovecot-imapd,spamassassin' 'media=ffmpeg,imagemagick' 'gis=gdal-bin,python3-gdal,postgis'
build v2 "$SECURITY" 1 "$DEVBOX" "$WEBSTACK" 'media=ffmpeg,imagemagick'
build v3 'trixie,~12,forky' 3 "$SCIENCE" 'gis=gdal-bin,python3-gdal,postgis' 'ops=ansible,openssh-client,rsync,jq'
build v4 'trixie,~12,forky' 4 "$WEBSTACK" 'mailsrv=postfix,dovecot-imapd,spamassassin' 'ops=ansible,openssh-client,rsync,jq' 'latex=texlive-latex-base'
build v5 "$SECURITY" 2 "$SCIENCE" 'gis=gdal-bin,python3-gdal,postgis'
rows=$(for ds in dev v1 v2 v3 v4 v5; do
  data=$W/$ds; [ $ds = dev ] && data=$SHARED/data/dev-history
  db=$W/$ds.db; [ -f "$db" ] || $H -q scan --db "$db" --dataset "$data"
  n=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['revisions']))" "$data/manifest.json")
  mid=$(( (n - 1) / 2 ))
  for k in 100 30; do
    rm -f "$W/$ds-$k.yaml"
    $H -q emit --db "$db" --range 0..$mid --max-layers $k --out "$W/$ds-$k.yaml"
    $H eval --db "$db" --hints "$W/$ds-$k.yaml" --range $mid..$((n - 1)) --max-layers $k |
      awk -v ds=$ds -v k=$k '/^(size-first|hints)/{printf "%-4s %3s %-10s update %s  fleet %s  storage %s GiB\n", ds, k, $1, $3, $6, $8}'
  done
done)
echo "$rows"
echo "$rows" | awk '{key=$2" "$3; u[key]+=$5; f[key]+=$7; s[key]+=$9; n[key]++}
  END {for (k in u) printf "mean %s update %.4f  fleet %.4f  storage %.2f GiB\n", k, u[k]/n[k], f[k]/n[k], s[k]/n[k]}' | sort
