#!/usr/bin/env bash
# Installs what the tests need on a bare Debian machine (run as root): Debian's nix-bin (2.8),
# a static busybox for builders, git; and configures Nix to work offline without build users.
set -euo pipefail
need=()
command -v nix-build >/dev/null 2>&1 || need+=(nix-bin)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
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
