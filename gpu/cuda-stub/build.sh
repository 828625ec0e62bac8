#!/usr/bin/env bash
# Builds a link-only stub libcuda.so.1 into "$1/lib64" (default: target/cuda-stub).
# Every cu* entry point returns CUDA_ERROR_NO_DEVICE (100); cuGetErrorString
# and cuGetErrorName succeed, so cust's error Display works. Point cust at it
# with CUDA_LIBRARY_PATH="$1". NEVER put it on LD_LIBRARY_PATH on a machine
# with a real driver: it would shadow the driver (scripts/gpu-cuda-test.sh
# only does so when `ldconfig -p` finds no libcuda.so.1).
#
# cuda_stub.c lists the 353 cu* functions of cust_raw 0.11.3 (cust 0.3.2's
# bindings); regenerate it if cust is upgraded (recipe: shared/reference/
# toolchain.md §1.3).
set -euo pipefail
out="${1:-target/cuda-stub}"
mkdir -p "$out/lib64"
gcc -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o "$out/lib64/libcuda.so.1" "$(dirname "$0")/cuda_stub.c"
ln -sf libcuda.so.1 "$out/lib64/libcuda.so"
echo "$out"
