#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: a Vulkan loader, Mesa's lavapipe
# (only when no Vulkan driver is present), redis-server, openssl, and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >&2
}

vulkan_driver_present() {
  # Any installed ICD manifest means some Vulkan driver is present (vendor or lavapipe).
  compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null
}

lavapipe_too_old() {
  have_pkg mesa-vulkan-drivers || return 1
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)
  dpkg --compare-versions "$v" lt 25 
}

ensure_backports() {
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding the bookworm-backports suite"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' | as_root tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    apt_updated=0
  fi
}

if command -v apt-get >/dev/null; then
  need=()
  have_pkg libvulkan1 || need+=(libvulkan1)
  have_pkg redis-server || need+=(redis-server)
  # openssl makes the certificates of the TLS tests (and of a fleet's wss set-up).
  command -v openssl >/dev/null || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_install "${need[@]}"
  fi
  if ! vulkan_driver_present || lavapipe_too_old; then
    log "no usable Vulkan driver: installing Mesa's lavapipe from bookworm-backports"
    ensure_backports
    apt_install -t bookworm-backports mesa-vulkan-drivers libvulkan1
  fi
else
  log "apt-get not found: install a Vulkan driver (or Mesa lavapipe >= 25) and redis-server yourself"
fi

lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.setup-lock-hash ] || [ "$(cat node_modules/.setup-lock-hash)" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" > node_modules/.setup-lock-hash
fi
