#!/usr/bin/env bash
# Installs what the tests need on a bare Debian machine (run as root): Debian's nix-bin (2.8),
# a static busybox for builders, git, the registry and its clients (docker-registry, skopeo,
# umoci; the registry test starts its own on a free loopback port), OpenSSL's headers (for
# `ocidir`), Chromium (the report is checked in it, headless), PostgreSQL (the store's tests
# run against a throwaway cluster, scripts/postgres.sh); and configures Nix to work offline
# without build users.
set -euo pipefail
need=()
command -v nix-build >/dev/null 2>&1 || need+=(nix-bin)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p /etc/nix
cat > /etc/nix/nix.conf <<'CONF'
build-users-group =
sandbox = false
substituters =
experimental-features = nix-command
CONF
nix --version
