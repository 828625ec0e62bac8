#!/usr/bin/env bash
# Builds link-only stub CUDA libraries into "$1/lib64" (default: target/cuda-stub):
#   libcuda.so.1    every cu* entry point returns CUDA_ERROR_NO_DEVICE (100);
#                   cuGetErrorString and cuGetErrorName succeed, so cust's error
#                   Display works (cuda_stub.c: cust_raw 0.11.3's 353 functions,
#                   plus the other cu* functions cudarc uses);
#   libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10,
#   libnvrtc.so.13  what candle's CUDA backend links (host `--features cuda`),
#                   each function returning an error (gen_candle_stub.py).
# Point cust at them with CUDA_LIBRARY_PATH="$1". NEVER put them on
# LD_LIBRARY_PATH on a machine with a real driver and toolkit: they would
# shadow it (scripts/gpu-cuda-test.sh only does so when `ldconfig -p` finds
# no libcuda.so.1).
#
# cuda_stub.c lists the cu* functions of cust_raw 0.11.3 (cust 0.3.2's
# bindings); regenerate it if cust is upgraded (recipe: shared/reference/
# toolchain.md §1.3). The other stubs are generated here from the symbol list
# candle_symbols.txt by gen_candle_stub.py (recipe there: regenerate the list
# if candle or cudarc is upgraded).
set -euo pipefail
out="${1:-target/cuda-stub}"
src="$(dirname "$0")"
mkdir -p "$out/lib64"
python3 "$src/gen_candle_stub.py" "$src/candle_symbols.txt" >"$out/candle_stub.c"
stub() { # stub SONAME SECTION [SOURCES...]
  local soname="$1" section="$2"; shift 2
  gcc -shared -fPIC -O2 -Wl,-soname,"$soname" -DTDQ_STUB_"$section" \
    -o "$out/lib64/$soname" "$@" "$out/candle_stub.c"
  ln -sf "$soname" "$out/lib64/${soname%%.so*}.so"
}
stub libcuda.so.1 cuda_extra "$src/cuda_stub.c"
stub libcudart.so.13 cudart
stub libcublas.so.13 cublas
stub libcublasLt.so.13 cublasLt
stub libcurand.so.10 curand
stub libnvrtc.so.13 nvrtc
echo "$out"
