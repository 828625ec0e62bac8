#!/usr/bin/env bash
# CI step for the `cuda` feature of tdquant-gpu, on machines with or without
# a GPU: builds the stub libcuda (for LINKING only), runs clippy and the
# feature's tests.
#
# cust links -lcuda; CUDA_LIBRARY_PATH points its build script at the stub.
# At run time the stub goes on LD_LIBRARY_PATH ONLY when `ldconfig -p` finds
# no real libcuda.so.1, so it can never shadow a driver. With the stub the
# tests assert the "no CUDA device" error path (TDQ_EXPECT_NO_DEVICE=1) and
# the GPU property tests print SKIPPED; with a real GPU they run.
set -euo pipefail
cd "$(dirname "$0")/.."

stub=target/cuda-stub
bash gpu/cuda-stub/build.sh "$stub" >/dev/null
export CUDA_LIBRARY_PATH="$PWD/$stub"

cargo clippy -p tdquant-gpu --no-deps --all-targets --release --features cuda -- -D warnings

# The integer models the SwinIR tests run (exported from the golden
# released-DOBI bounds; regenerated when missing).
export TDQ_GPU_MODELS="$PWD/target/gpu-models"
bash scripts/gpu-models.sh "$TDQ_GPU_MODELS"

tests=(cargo test -p tdquant-gpu --release --features cuda --lib --test cuda_backend -- --nocapture)
if ldconfig -p | grep -q 'libcuda\.so\.1'; then
  echo "[gpu-cuda-test] a real libcuda.so.1 is installed: testing against it (stub used only to link)"
  "${tests[@]}"
else
  echo "[gpu-cuda-test] no libcuda.so.1 on this machine: running against the stub"
  LD_LIBRARY_PATH="$PWD/$stub/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TDQ_EXPECT_NO_DEVICE=1 "${tests[@]}"
fi
