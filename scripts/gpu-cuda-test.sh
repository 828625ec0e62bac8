#!/usr/bin/env bash
# CI step for the `cuda` features, on machines with or without a GPU:
#   tdquant-gpu  (cust: the integer kernels)
#   tdquant-host (candle's CUDA backend: --device cuda for calibrate, eval, bench)
# builds the stub CUDA libraries (for LINKING only), runs clippy and the
# features' tests.
#
# cust links -lcuda; CUDA_LIBRARY_PATH points its build script (and cudarc's
# link search) at the stubs. candle's kernels are compiled by the pinned nvcc
# of scripts/gpu-ptx.sh for compute capability 9.0 (H100/H200). At run time
# the stubs go on LD_LIBRARY_PATH ONLY when `ldconfig -p` finds no real
# libcuda.so.1, so they can never shadow a driver. With the stubs the tests
# assert the "no CUDA device" error paths (TDQ_EXPECT_NO_DEVICE=1) and the
# GPU tests print SKIPPED; with a real GPU (and the CUDA 13 libraries) they run.
set -euo pipefail
cd "$(dirname "$0")/.."

stub=target/cuda-stub
bash gpu/cuda-stub/build.sh "$stub" >/dev/null
export CUDA_LIBRARY_PATH="$PWD/$stub"
nvcc_bin="$(bash scripts/gpu-ptx.sh --bin-dir)"
export PATH="$nvcc_bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

cargo clippy -p tdquant-gpu --no-deps --all-targets --release --features cuda -- -D warnings
cargo clippy -p tdquant-host --no-deps --all-targets --release --features cuda -- -D warnings

# The integer models the SwinIR tests run (exported from the golden
# released-DOBI bounds; regenerated when missing).
export TDQ_GPU_MODELS="$PWD/target/gpu-models"
bash scripts/gpu-models.sh "$TDQ_GPU_MODELS"

run_tests() {
  cargo test -p tdquant-gpu --release --features cuda --lib --test cuda_backend -- --nocapture
  cargo test -p tdquant-host --release --features cuda --test calib_cuda -- --nocapture
}
if ldconfig -p | grep -q 'libcuda\.so\.1'; then
  echo "[gpu-cuda-test] a real libcuda.so.1 is installed: testing against it (stubs used only to link)"
  run_tests
else
  echo "[gpu-cuda-test] no libcuda.so.1 on this machine: running against the stubs"
  LD_LIBRARY_PATH="$PWD/$stub/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TDQ_EXPECT_NO_DEVICE=1 run_tests
fi
