#!/usr/bin/env bash
# The one command that runs every test of tdquant (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target

# Each step's wall time goes to the closing summary (and so to CI's log), so
# the slow steps are named by a measurement, not a guess.
STEP_TIMES="$PWD/target/test-step-times.log"
: >"$STEP_TIMES"
step_name=""
step_start=$SECONDS
step_done() {
  if [ -n "$step_name" ]; then
    printf '%6d s  %s\n' $((SECONDS - step_start)) "$step_name" >>"$STEP_TIMES"
  fi
  step_name=""
}
step() {
  step_done
  step_name=$*
  step_start=$SECONDS
  printf '\n==> %s\n' "$*"
}

step "setup: toolchains, QEMU, pinned nvcc (scripts/setup.sh)"
bash scripts/setup.sh

# Every test that skips appends one line here (tdquant_host::data_root::record_skip
# and the hardware-gated tests); the summary at the end lists them.
export TDQ_SKIP_LOG="$PWD/target/test-skips.log"
: >"$TDQ_SKIP_LOG"
summary() {
  local rc=$?
  step_done
  printf '\n==> wall time per step\n'
  cat "$STEP_TIMES"
  printf '%6d s  in all\n' "$SECONDS"
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

step "gpu + host: cuda features against the stub CUDA libraries (no-device paths; GPU tests SKIPPED)"
bash scripts/gpu-cuda-test.sh

step "firmware under QEMU, compared with the host"
bash scripts/firmware-check.sh

step "Cortex-M4 DSP kernels == core oracle under QEMU (1,000 seeded random cases per kernel + edges)"
bash scripts/firmware-kernel-check.sh 1000

step "integer SwinIR-light on the Cortex-M4 under QEMU, bit-exact with the host (W4A4 x4, 32x32 tile)"
bash scripts/firmware-int-check.sh 4 32

# The README's whole-image figures are baby (128x128, about 3.5 minutes of QEMU):
# `bash scripts/firmware-image-check.sh 4 8 4 baby`.
step "a whole Set5 LR image (woman, 57x86) x4 on the Cortex-M4 under QEMU, tile by tile in <= 256 KiB, bit-exact with the host"
bash scripts/firmware-image-check.sh 4 8 4 woman

step "fuzz smoke: the stable mutation fuzzer, 20 s per input parser, then the regression corpus"
bash scripts/fuzz.sh --smoke
python3 fuzz/regressions/make_crafted.py --check
