#!/usr/bin/env bash
# Where the firmware's instructions go: the integer tile of
# scripts/firmware-int-check.sh run once more under QEMU with a TCG plugin
# that counts executed translation blocks (scripts/qemu_tb_counts.c), then
# attributed to operators, functions and source lines
# (scripts/firmware_profile.py).
#
#   scripts/firmware-profile.sh [bits (4)] [tile side (32)] [-- firmware_profile.py options]
#
# e.g. `scripts/firmware-profile.sh 4 32 -- --annotate softmax_codes` adds the
# hot instructions of the softmax with their execution counts. The report is
# target/firmware-profile/w$bits/profile.txt. TDQ_KERNELS=scalar profiles the
# oracle's kernels. Needs a C compiler and QEMU built with plugin support
# (Debian's qemu-system-arm is).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/firmware-lib.sh
bits=4
side=32
if [[ $# -gt 0 && "$1" != "--" ]]; then bits=$1; shift; fi
if [[ $# -gt 0 && "$1" != "--" ]]; then side=$1; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi

# Builds the firmware for this tile and checks it (hash == host) first, so
# the profile is of a firmware known to be right.
bash scripts/firmware-int-check.sh "$bits" "$side"

out=target/firmware-profile/w$bits
mkdir -p "$out"
elf=firmware-example/target/thumbv7em-none-eabihf/release/upscale_tile
dis=target/firmware-int/w$bits/firmware.dis
cc -O2 -shared -fPIC -o "$out/libtbcounts.so" scripts/qemu_tb_counts.c
rm -f "$out/tb-counts.txt"
rc=$(firmware_run "$elf" "$out/firmware.log" 1800 -icount shift=0 \
  -plugin "$PWD/$out/libtbcounts.so,out=$PWD/$out/tb-counts.txt")
firmware_expect_exit0 firmware-profile "$rc" "$out/firmware.log"
[[ -s "$out/tb-counts.txt" ]] || { echo "firmware-profile: the plugin wrote no counts" >&2; exit 1; }
python3 scripts/firmware_profile.py "$elf" "$dis" "$out/tb-counts.txt" "$@" >"$out/profile.txt"
grep "TDQ instructions" "$out/firmware.log" || true
head -40 "$out/profile.txt"
echo "firmware-profile: the whole report is $out/profile.txt"
