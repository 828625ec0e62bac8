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
root=$PWD
source scripts/firmware-lib.sh
bits=${1:-4}
core=${2:-8}
halo=${3:-4}
name=${4:-baby}
data=$(firmware_data_root)
out=$root/target/firmware-int/w$bits
mkdir -p "$out"
image=$data/benchmark/Set5/LR_bicubic/X4/${name}x4.png

cargo host --data "$data" export \
  --bounds "$data/golden/dobi_released_w$bits.safetensors" --bits "$bits" -o "$out/model.tdq"
cargo run --release --quiet -p tdquant-host --example firmware_image -- \
  "$out/model.tdq" "$image" "$core" "$halo" "$out/image.rgb" >"$out/image-expected.txt"
read -r h w < <(sed -nE 's/.* h=([0-9]+) w=([0-9]+) .*/\1 \2/p' "$out/image-expected.txt")

( cd firmware-example && unset CARGO_TARGET_DIR && TDQ_INT_MODEL="$out/model.tdq" TDQ_IMAGE="$out/image.rgb" \
    TDQ_IMAGE_H="$h" TDQ_IMAGE_W="$w" TDQ_CORE="$core" TDQ_HALO="$halo" \
    cargo build --release --quiet --bin upscale_image )
elf=firmware-example/target/thumbv7em-none-eabihf/release/upscale_image
start=$(date +%s)
rc=$(firmware_run "$elf" "$out/image.log" 1800 -icount shift=0)
echo "QEMU wall time: $(( $(date +%s) - start )) s"
cat "$out/image.log"
firmware_expect_exit0 firmware-image-check "$rc" "$out/image.log"
grep -o "TDQ image .*" "$out/image.log" >"$out/image-got.txt" || true
firmware_expect_same firmware-image-check "$out/image-expected.txt" "$out/image-got.txt" \
  "firmware output hash differs from the host oracle"
# RAM: scratch + output strip + the painted stack's high-water mark.
total=$(sed -nE 's/.* total=([0-9]+).*/\1/p' "$out/image.log")
if [ -z "$total" ] || [ "$total" -gt 262144 ]; then
  echo "firmware-image-check: FAILED — scratch + strip + stack ${total:-?} bytes > 256 KiB" >&2
  exit 1
fi
echo "firmware-image-check: OK — $name, ${h}x${w} LR image x4, ${core}+2x${halo} contexts, $total bytes of RAM (scratch + strip + stack), hash identical to the host"
