#!/usr/bin/env bash
# Installs the Debian packages that icebreaker's tests use, when missing:
# coturn (turnserver, turnutils_*), stun-client (stun), nftables (nft),
# conntrack and iproute2 (ip). Needs root; without root it says what is
# missing and leaves the tests to skip (or fail, under CI=true).
set -euo pipefail

declare -A need=(
  [turnserver]=coturn
  [turnutils_stunclient]=coturn
  [stun]=stun-client
  [nft]=nftables
  [conntrack]=conntrack
  [ip]=iproute2
)
missing=()
for bin in "${!need[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ] && ! [ -x "/sbin/$bin" ]; then
    missing+=("${need[$bin]}")
  fi
done
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
# The coturn package may start its own daemon on 3478; our tests use their
# own ports, but do not leave a stray system server running.
if command -v systemctl >/dev/null 2>&1; then systemctl stop coturn >/dev/null 2>&1 || true; fi
