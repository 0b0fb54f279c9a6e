#!/usr/bin/env bash
# Installs the Debian packages that icebreaker's tests use, when missing:
#   gcc, libc6-dev      cgo, which `go test -race` needs
#   coturn              turnserver, turnutils_* (interop peers)
#   stun-client         stun (a classic RFC 3489 client)
#   nftables, conntrack, iproute2   the NAT lab
#   magic-wormhole, wormhole-william, python3-magic-wormhole-mailbox-server,
#   magic-wormhole-transit-relay, python3-spake2   the rendezvous peers
#   miniupnpd-nftables, natpmpc, miniupnpc   the port-mapping daemon and its clients
#   postgresql          a throwaway cluster for the shared user store (initdb)
#   podman, runc        builds and runs the FROM scratch image (deploy/docker)
#   chromium            a headless browser that loads serve's ICE test page
# Needs root; without root it says what is missing and leaves the tests to
# skip (or fail, under CI=true).
set -euo pipefail

# A command, or a Python module (py:NAME), and the package that brings it.
declare -A need=(
  [gcc]=gcc
  [turnserver]=coturn
  [turnutils_stunclient]=coturn
  [stun]=stun-client
  [nft]=nftables
  [conntrack]=conntrack
  [ip]=iproute2
  [wormhole]=magic-wormhole
  [wormhole-william]=wormhole-william
  [py:wormhole_mailbox_server]=python3-magic-wormhole-mailbox-server
  [py:wormhole_transit_relay]=magic-wormhole-transit-relay
  [py:spake2]=python3-spake2
  [miniupnpd]=miniupnpd-nftables
  [natpmpc]=natpmpc
  [upnpc]=miniupnpc
  [podman]=podman
  [runc]=runc
  [chromium]=chromium
)
missing=()
for bin in "${!need[@]}"; do
  case "$bin" in
  py:*)
    mod=${bin#py:}
    if ! [ -x /usr/bin/python3 ] || ! /usr/bin/python3 -c "import $mod" >/dev/null 2>&1; then
      missing+=("${need[$bin]}")
    fi
    ;;
  *)
    if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ] && ! [ -x "/sbin/$bin" ]; then
      missing+=("${need[$bin]}")
    fi
    ;;
  esac
done
# libc6-dev has no command of its own: cgo needs its headers.
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
# PostgreSQL's server binaries are not on PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all test dependencies present"
  exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: not root; missing packages: $pkgs (tests that need them will skip)" >&2
  exit 0
fi
echo "install-test-deps: installing $pkgs"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $pkgs
# Some of these packages start a system daemon (coturn on 3478, miniupnpd);
# our tests start their own on their own ports: leave none running.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop coturn >/dev/null 2>&1 || true
  systemctl stop miniupnpd >/dev/null 2>&1 || true
  systemctl stop postgresql >/dev/null 2>&1 || true
fi
