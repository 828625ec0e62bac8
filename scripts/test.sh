#!/usr/bin/env bash
# The one command that runs every test of tdquant (CI runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check
(cd firmware-example && cargo fmt --check)

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
