#!/usr/bin/env bash
# A whole Set5 LR image (baby, 128x128) upscaled x4 on the Cortex-M4 under
# QEMU, tile by tile with halos, in bounded RAM, bit-exact with the host:
#
#   export (cargo host export) → raw LR image + expected hash (CPU oracle,
#   upscale_tiled with the same cores and halos) → firmware build embedding
#   both → QEMU run (-icount) → compare the firmware's SHA-256 line (its
#   output is streamed through SHA-256 row strip by row strip) with the
#   host's → check that scratch + output strip + measured stack is at most
#   256 KiB.
# Usage: scripts/firmware-image-check.sh [bits (4)] [core side (8)] [halo (4)] [Set5 image (baby)]
# (CI runs woman, 57x86: a third of baby's pixels, and sides that are not
# multiples of the core, so the edge tiles are partial.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/firmware-lib.sh
bits=${1:-4}
core=${2:-8}
halo=${3:-4}
name=${4:-baby}
firmware_export_model "$bits"
image=$data/benchmark/Set5/LR_bicubic/X4/${name}x4.png

cargo run --release --quiet -p tdquant-host --example firmware_image -- \
  "$out/model.tdq" "$image" "$core" "$halo" "$out/image.rgb" >"$out/image-expected.txt"
read -r h w < <(sed -nE 's/.* h=([0-9]+) w=([0-9]+) .*/\1 \2/p' "$out/image-expected.txt")

( cd firmware-example && unset CARGO_TARGET_DIR && TDQ_INT_MODEL="$out/model.tdq" TDQ_IMAGE="$out/image.rgb" \
    TDQ_IMAGE_H="$h" TDQ_IMAGE_W="$w" TDQ_CORE="$core" TDQ_HALO="$halo" \
    cargo build --release --quiet --bin upscale_image )
elf=firmware-example/target/thumbv7em-none-eabihf/release/upscale_image
firmware_run_expect firmware-image-check "$elf" 1800 "$out/image.log" image "$out/image-expected.txt"
# RAM: scratch + output strip + the painted stack's high-water mark.
total=$(sed -nE 's/.* total=([0-9]+).*/\1/p' "$out/image.log")
if [ -z "$total" ] || [ "$total" -gt 262144 ]; then
  echo "firmware-image-check: FAILED — scratch + strip + stack ${total:-?} bytes > 256 KiB" >&2
  exit 1
fi
echo "firmware-image-check: OK — $name, ${h}x${w} LR image x4, ${core}+2x${halo} contexts, $total bytes of RAM (scratch + strip + stack), hash identical to the host"
