#!/usr/bin/env bash
# Compiles gpu/kernels/*.cu to the committed gpu/ptx/*.ptx with a pinned nvcc.
#
#   scripts/gpu-ptx.sh            regenerate gpu/ptx/*.ptx (commit the result)
#   scripts/gpu-ptx.sh --check    CI: regenerate into a temp dir and fail if the
#                                 committed PTX differs (stale) or is missing;
#                                 validate each file with `ptxas -arch=sm_90`;
#                                 compile tdq_arith.cuh as plain C11
#   scripts/gpu-ptx.sh --install  only install the pinned nvcc (scripts/setup.sh)
#   scripts/gpu-ptx.sh --bin-dir  install it if needed, print its bin folder
#                                 (PATH for candle's kernel build, host --features cuda)
#
# nvcc comes from PyPI (no CUDA install needed): nvidia-cuda-nvcc 13.0.88 and
# its three dependencies, ALL pinned to 13.0.88 — the nvcc wheel does not pin
# them, and an unpinned nvidia-nvvm (cicc) would be the newest 13.x — and the
# CUDA 13.0 CCCL headers (13.0.85). The target
# H200 machine's driver is CUDA 13.0, which JIT-compiles PTX ISA ≤ 9.0 only;
# nvcc 13.0 writes `.version 9.0`, and this script rejects anything newer.
# The venv lives outside the repo (default ~/.cache/tdquant/nvcc-13.0.88,
# override with TDQ_NVCC_VENV) so it survives fresh clones on one machine.
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC_VERSION=13.0.88
# The CUDA 13.0 C++ core libraries (<nv/target>, <cuda/std/...>), which
# candle's kernels include (host `--features cuda`); our kernels do not.
CCCL_VERSION=13.0.85
VENV="${TDQ_NVCC_VENV:-$HOME/.cache/tdquant/nvcc-$NVCC_VERSION}"
ARCH=compute_90          # PTX for Hopper (H200 = sm_90); JIT by the driver
SM=sm_90                 # ptxas validation target
MAX_PTX_ISA=9.0          # what a CUDA 13.0 driver accepts
NVCC_FLAGS=(-ptx "-arch=$ARCH" -std=c++17 -O3 -Werror all-warnings)

log() { printf '[gpu-ptx] %s\n' "$*" >&2; }
die() { printf '[gpu-ptx] ERROR: %s\n' "$*" >&2; exit 1; }

nv_root() { ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n1; }

install_nvcc() {
  local root; root="$(nv_root || true)"
  if [ -n "$root" ] && [ -x "$root/bin/nvcc" ] \
     && "$root/bin/nvcc" --version | grep -q "V$NVCC_VERSION" \
     && [ -f "$root/include/cccl/nv/target" ]; then
    return 0
  fi
  log "installing nvcc $NVCC_VERSION (pip, ~120 MB) into $VENV"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
    "nvidia-cuda-nvcc==$NVCC_VERSION" "nvidia-nvvm==$NVCC_VERSION" \
    "nvidia-cuda-crt==$NVCC_VERSION" "nvidia-cuda-runtime==$NVCC_VERSION" \
    "nvidia-cuda-cccl==$CCCL_VERSION"
  root="$(nv_root)"
  "$root/bin/nvcc" --version | grep -q "V$NVCC_VERSION" || die "nvcc in $VENV is not $NVCC_VERSION"
}

# compile_all DIR: every gpu/kernels/*.cu → DIR/*.ptx, with the ISA checked.
compile_all() {
  local dir="$1" root cu name ptx version
  root="$(nv_root)"
  for cu in gpu/kernels/*.cu; do
    name="$(basename "$cu" .cu)"
    ptx="$dir/$name.ptx"
    # Relative paths and no -lineinfo: the PTX must not depend on the checkout.
    "$root/bin/nvcc" "${NVCC_FLAGS[@]}" -o "$ptx" "$cu"
    version="$(sed -n 's/^\.version \([0-9.]*\)$/\1/p' "$ptx")"
    [ -n "$version" ] || die "$ptx has no .version line"
    awk -v v="$version" -v m="$MAX_PTX_ISA" 'BEGIN { exit !(v + 0 <= m + 0) }' \
      || die "$ptx is PTX ISA $version > $MAX_PTX_ISA (a CUDA 13.0 driver cannot load it)"
    grep -qx "\.target $SM" "$ptx" || die "$ptx does not target $SM"
  done
}

mode="${1:-write}"
case "$mode" in
  --install) install_nvcc; exit 0 ;;
  --bin-dir) install_nvcc; echo "$(nv_root)/bin"; exit 0 ;;
  write|--check) ;;
  *) die "usage: $0 [--check|--install]" ;;
esac

install_nvcc
root="$(nv_root)"

if [ "$mode" = write ]; then
  mkdir -p gpu/ptx
  rm -f gpu/ptx/*.ptx
  compile_all gpu/ptx
  for ptx in gpu/ptx/*.ptx; do "$root/bin/ptxas" "-arch=$SM" "$ptx" -o /dev/null; done
  log "wrote $(ls gpu/ptx/*.ptx | tr '\n' ' ')"
  exit 0
fi

# --check
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
compile_all "$tmp"
status=0
for fresh in "$tmp"/*.ptx; do
  name="$(basename "$fresh")"
  if [ ! -f "gpu/ptx/$name" ]; then
    log "MISSING: gpu/ptx/$name (run scripts/gpu-ptx.sh and commit)"; status=1
  elif ! diff -u "gpu/ptx/$name" "$fresh" >"$tmp/$name.diff"; then
    log "STALE: gpu/ptx/$name differs from gpu/kernels/${name%.ptx}.cu (run scripts/gpu-ptx.sh and commit):"
    head -n 40 "$tmp/$name.diff" >&2; status=1
  fi
done
for committed in gpu/ptx/*.ptx; do
  [ -f "$tmp/$(basename "$committed")" ] || { log "ORPHAN: $committed has no gpu/kernels/*.cu"; status=1; }
done
[ "$status" -eq 0 ] || die "committed PTX is not current"
for ptx in gpu/ptx/*.ptx; do
  "$root/bin/ptxas" "-arch=$SM" -v "$ptx" -o /dev/null 2>"$tmp/ptxas.log" \
    || { cat "$tmp/ptxas.log" >&2; die "ptxas -arch=$SM rejected $ptx"; }
  log "ptxas $SM ok: $ptx ($(grep -c 'Compiling entry' "$tmp/ptxas.log") kernels; $(grep -o 'Used [0-9]* registers' "$tmp/ptxas.log" | tr '\n' ',' | sed 's/,$//'))"
done
# The header must stay plain C (and warning-free C++) for every consumer.
gcc -std=c11 -x c -fsyntax-only -Wall -Wextra -Wpedantic -Werror gpu/kernels/tdq_arith.cuh
g++ -std=c++17 -x c++ -fsyntax-only -Wall -Wextra -Wpedantic -Werror gpu/kernels/tdq_arith.cuh
g++ -std=c++17 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -Igpu/kernels gpu/csrc/tdq_host_shim.cpp
log "ok: gpu/ptx is current, ptxas $SM accepts it, tdq_arith.cuh compiles as C11 and C++17 (-Werror)"
