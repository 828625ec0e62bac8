#!/usr/bin/env bash
# Per-kernel parity on the Cortex-M4 (QEMU): every DSP kernel of
# firmware-example/src/kernels against the core scalar oracle on hand-picked
# edge cases plus seeded random cases (default 1,000 per kernel), compared
# with == on the M4 itself. Fails unless QEMU exits 0 and every kernel line
# reports mismatches=0 with at least the requested number of cases.
# Usage: scripts/firmware-kernel-check.sh [random cases per kernel (1000)] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/firmware-lib.sh
cases=${1:-1000}
seed=${2:-20261204}
out=$PWD/target/firmware-kernels
mkdir -p "$out"
( cd firmware-example && unset CARGO_TARGET_DIR && TDQ_PARITY_CASES="$cases" TDQ_PARITY_SEED="$seed" \
    cargo build --release --quiet --bin kernel_parity )
elf=firmware-example/target/thumbv7em-none-eabihf/release/kernel_parity
rc=$(firmware_run "$elf" "$out/parity.log" 900 -icount shift=0)
cat "$out/parity.log"
firmware_expect_exit0 firmware-kernel-check "$rc" "$out/parity.log"
kernels="linear linear_codes linear_stream softmax av conv normalize exp2 rho linear_gelu"
for k in $kernels; do
  line=$(grep -E "TDQ parity kernel=$k cases=" "$out/parity.log" || true)
  n=$(sed -nE 's/.*random ([0-9]+),.*/\1/p' <<<"$line")
  if [ -z "$line" ] || ! grep -q "mismatches=0" <<<"$line" || [ "${n:-0}" -lt "$cases" ]; then
    echo "firmware-kernel-check: FAILED — kernel $k: '${line:-no report}'" >&2
    exit 1
  fi
done
echo "firmware-kernel-check: OK — $(wc -w <<<"$kernels") kernels, $cases random cases each (seed $seed) + edges, identical to the oracle on Cortex-M4"
