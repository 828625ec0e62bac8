#!/usr/bin/env bash
# The one command that runs every test of tdquant (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*"; }

# Every test that skips appends one line here (tdquant_host::data_root::record_skip
# and the hardware-gated tests); the summary at the end lists them.
export TDQ_SKIP_LOG="$PWD/target/test-skips.log"
mkdir -p target
: >"$TDQ_SKIP_LOG"
summary() {
  local rc=$?
  printf '\n==> skipped tests\n'
  if [ -s "$TDQ_SKIP_LOG" ]; then
    sort -u "$TDQ_SKIP_LOG"
    printf '%s test(s) skipped (reasons above)\n' "$(sort -u "$TDQ_SKIP_LOG" | wc -l)"
  else
    printf 'none\n'
  fi
  if [ -d ../shared/data ] || [ -n "${TDQUANT_DATA:-}" ]; then
    printf 'data root: %s\n' "${TDQUANT_DATA:-../shared/data}"
  else
    printf 'data root: the embedded bundle assets/ (no ../shared/data): tests needing the PyTorch goldens skip\n'
  fi
  exit "$rc"
}
trap summary EXIT

step "cargo fmt --check"
cargo fmt --all --check
(cd firmware-example && cargo fmt --check)

step "host crate: no module imports a module above it (scripts/check-layers.py)"
python3 scripts/check-layers.py

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings
(cd firmware-example && cargo clippy --release -- -D warnings)

step "core builds no_std, no alloc, for the Cortex-M4"
cargo build --release -p tdquant-core --target thumbv7em-none-eabihf
cargo build --release -p tdquant-core --target thumbv7em-none-eabihf --features defmt

step "cargo test --workspace (release: candle is ~180x slower in debug)"
cargo test --workspace --release

step "gpu: committed PTX is current, ptxas -arch=sm_90 accepts it"
bash scripts/gpu-ptx.sh --check

step "gpu: cuda feature against the stub libcuda (no-device path; GPU tests SKIPPED)"
bash scripts/gpu-cuda-test.sh

step "firmware under QEMU, compared with the host"
bash scripts/firmware-check.sh

step "Cortex-M4 DSP kernels == core oracle under QEMU (1,000 seeded random cases per kernel + edges)"
bash scripts/firmware-kernel-check.sh 1000

step "integer SwinIR-light on the Cortex-M4 under QEMU, bit-exact with the host (W4A4 x4, 32x32 tile)"
bash scripts/firmware-int-check.sh 4 32

step "a whole 128x128 LR image x4 on the Cortex-M4 under QEMU, tile by tile in <= 256 KiB, bit-exact with the host"
bash scripts/firmware-image-check.sh 4 8 4

step "fuzz smoke: the stable mutation fuzzer, 20 s per input parser, then the regression corpus"
bash scripts/fuzz.sh --smoke
