#!/usr/bin/env bash
# Builds the Cortex-M4 firmware, runs it under QEMU (mps2-an386) and compares
# what it prints with what the host computes for the same embedded model.
# Exits non-zero on a build failure, a firmware error exit, a timeout or any
# difference.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/firmware-lib.sh
out=${FIRMWARE_OUT:-$root/target/firmware-check}
mkdir -p "$out"

# The host's view of the embedded model: the lines the firmware must print.
cargo run --release --quiet -p tdquant-tests --example demo_fixture -- expect \
  "${TDQ_MODEL:-$root/tests/fixtures/demo.tdq}" >"$out/expected.txt"

( cd firmware-example && cargo build --release --quiet )
elf=firmware-example/target/thumbv7em-none-eabihf/release/container_demo

qemu_rc=$(firmware_run "$elf" "$out/firmware.log" 120)
cat "$out/firmware.log"
firmware_expect_exit0 firmware-check "$qemu_rc" "$out/firmware.log"
grep -o "TDQ .*" "$out/firmware.log" >"$out/got.txt" || true
firmware_expect_same firmware-check "$out/expected.txt" "$out/got.txt" \
  "firmware output differs from the host oracle"
echo "firmware-check: OK — $(wc -l <"$out/got.txt") lines identical to the host oracle"

# A corrupt embedded model must be reported and end in a non-zero exit, not
# a hard fault or a hang.
model=${TDQ_MODEL:-$root/tests/fixtures/demo.tdq}
head -c $(( $(wc -c <"$model") - 5 )) "$model" >"$out/truncated.tdq"
( cd firmware-example && TDQ_MODEL="$out/truncated.tdq" cargo build --release --quiet )
bad_rc=$(firmware_run "$elf" "$out/bad.log" 120)
cat "$out/bad.log"
# Leave the firmware built for the real model again.
( cd firmware-example && cargo build --release --quiet )
if [ "$bad_rc" -ne 1 ] || ! grep -q "TDQ model rejected" "$out/bad.log"; then
  echo "firmware-check: FAILED — truncated model gave exit $bad_rc (want 1 and an error report)" >&2
  exit 1
fi
echo "firmware-check: OK — truncated model reported and exit status 1"
