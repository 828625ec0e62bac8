#!/usr/bin/env bash
# Installs what a fresh machine lacks for building and testing tdquant.
# Idempotent: each step is skipped when its tool is already there.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
  log "rustup target add thumbv7em-none-eabihf"
  rustup target add thumbv7em-none-eabihf
fi
for c in clippy rustfmt llvm-tools; do
  if ! rustup component list --installed | grep -q "^$c"; then
    log "rustup component add $c"
    rustup component add "$c"
  fi
done

if ! command -v qemu-system-arm >/dev/null; then
  log "apt-get install qemu-system-arm"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-system-arm
fi

# Decodes the firmware's defmt frames (about 2 minutes to build once).
if ! command -v defmt-print >/dev/null; then
  log "cargo install defmt-print"
  cargo install defmt-print --version 1.2.0 --locked --quiet
fi
# nvcc 13.0.88 from PyPI (venv in ~/.cache/tdquant) for scripts/gpu-ptx.sh.
bash "$(dirname "$0")/gpu-ptx.sh" --install

log "ok"
