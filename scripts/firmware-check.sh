#!/usr/bin/env bash
# Builds the Cortex-M4 firmware, runs it under QEMU (mps2-an386) and compares
# what it prints with what the host computes for the same embedded model.
# Exits non-zero on a build failure, a firmware error exit, a timeout or any
# difference.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${FIRMWARE_OUT:-$root/target/firmware-check}
mkdir -p "$out"

# The host's view of the embedded model: the lines the firmware must print.
cargo run --release --quiet -p tdquant-tests --example demo_fixture -- expect \
  "${TDQ_MODEL:-$root/tests/fixtures/demo.tdq}" >"$out/expected.txt"

( cd firmware-example && cargo build --release --quiet )
elf=firmware-example/target/thumbv7em-none-eabihf/release/container_demo

set +e
timeout 120 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" </dev/null \
  >"$out/frames.bin" 2>"$out/qemu.stderr"
qemu_rc=$?
set -e
defmt-print -e "$elf" --log-format '{L} {s}' <"$out/frames.bin" >"$out/firmware.log" 2>&1 || true
cat "$out/firmware.log"
if [ "$qemu_rc" -ne 0 ]; then
  echo "firmware-check: QEMU exited with $qemu_rc (124 = timeout)" >&2
  cat "$out/qemu.stderr" >&2
  exit 1
fi
grep -o "TDQ .*" "$out/firmware.log" >"$out/got.txt" || true
if ! diff -u "$out/expected.txt" "$out/got.txt"; then
  echo "firmware-check: FAILED — firmware output differs from the host oracle" >&2
  exit 1
fi
echo "firmware-check: OK — $(wc -l <"$out/got.txt") lines identical to the host oracle"

# A corrupt embedded model must be reported and end in a non-zero exit, not
# a hard fault or a hang.
model=${TDQ_MODEL:-$root/tests/fixtures/demo.tdq}
head -c $(( $(wc -c <"$model") - 5 )) "$model" >"$out/truncated.tdq"
( cd firmware-example && TDQ_MODEL="$out/truncated.tdq" cargo build --release --quiet )
set +e
timeout 120 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" </dev/null \
  >"$out/bad-frames.bin" 2>>"$out/qemu.stderr"
bad_rc=$?
set -e
defmt-print -e "$elf" --log-format '{L} {s}' <"$out/bad-frames.bin" >"$out/bad.log" 2>&1 || true
cat "$out/bad.log"
# Leave the firmware built for the real model again.
( cd firmware-example && cargo build --release --quiet )
if [ "$bad_rc" -ne 1 ] || ! grep -q "TDQ model rejected" "$out/bad.log"; then
  echo "firmware-check: FAILED — truncated model gave exit $bad_rc (want 1 and an error report)" >&2
  exit 1
fi
echo "firmware-check: OK — truncated model reported and exit status 1"
