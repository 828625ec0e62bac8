#!/usr/bin/env bash
# The one device check of tdquant, for a machine WITH an NVIDIA GPU (the
# target is an H200, driver CUDA 13.0). Fails loudly on any mismatch; must
# finish in under 10 minutes there.
#
#   scripts/gpu-check.sh          build + run (a machine with both cargo and a GPU)
#   scripts/gpu-check.sh bundle   build only, into target/gpu-check/: the
#                                 cuda_backend test binary and the gpu_parity
#                                 example (tdquant-gpu --features cuda), the
#                                 calib_cuda test binary and the tdquant CLI
#                                 (tdquant-host --features cuda), the W4/W3/W2
#                                 integer models, the Set5 x4 LR images and
#                                 the embedded data bundle assets/ (a GPU
#                                 machine without Rust, data or network runs
#                                 the bundle; carry target/gpu-check)
#   scripts/gpu-check.sh run      run target/gpu-check/ (needs no cargo)
#
# Steps 1-3 check the integer kernels (cust; needs only the driver). Step 4
# checks calibration on candle's CUDA backend, which links the CUDA 13
# libraries (cudart, cublas, cublasLt, curand, nvrtc; too large to carry):
# it fails, naming the missing ones, where the GPU machine lacks them.
#   4a calib_cuda with TDQ_REQUIRE_GPU=1: FP, W4A4 and DQC gradients GPU vs
#      CPU; DOBI bounds GPU vs CPU within one candidate step; Set5 W4A4
#      PSNR-Y GPU vs CPU within 0.01 dB;
#   4b `tdquant bench dqc --device cuda` at the paper batch (32 x 64^2),
#      50 iterations: seconds per iteration, and the paper preset's 3,000
#      iterations projected; `bench fp --device cuda --size 256`.
#
# With the device tool of this workplace: `scripts/gpu-check.sh bundle` here,
# then run `bash scripts/gpu-check.sh run` there with carry ["target/gpu-check"]
# (about 45 MB; the logs land in $OUT/gpu-check.log, $OUT/gpu-parity.log,
# $OUT/calib-cuda.log and $OUT/calib-bench.log).
#
# Linking uses the stub libcuda (soname libcuda.so.1, link time only); at run
# time the loader must resolve libcuda.so.1 to the REAL driver: this script
# refuses to run against the stub. Every GPU property test runs with
# TDQ_REQUIRE_GPU=1, so a missing device is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=target/gpu-check
budget_s=450   # steps 1-3 must stay under 8 minutes on the GPU machine
calib_budget_s=420   # step 4 (the CPU side of 4a runs on the GPU machine's cores)

log() { printf '[gpu-check] %s\n' "$*"; }
die() { printf '[gpu-check] FAILED: %s\n' "$*" >&2; exit 1; }

# bundle_test NAME -p PACKAGE: builds the `--features cuda` test binary NAME
# of PACKAGE and copies it to the bundle.
bundle_test() {
  local name="$1"; shift
  cargo test "$@" --release --features cuda --test "$name" --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    try: msg = json.loads(line)
    except ValueError: continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == sys.argv[1]:
        print(msg["executable"])' "$name" >"$bundle/executables.txt"
  [ -s "$bundle/executables.txt" ] || die "no $name test executable was built"
  while read -r exe; do cp "$exe" "$bundle/$name"; done <"$bundle/executables.txt"
  rm "$bundle/executables.txt"
}

build_bundle() {
  local stub=target/cuda-stub
  bash gpu/cuda-stub/build.sh "$stub" >/dev/null
  # A user-supplied CUDA_LIBRARY_PATH (a real toolkit/driver dir) wins.
  export CUDA_LIBRARY_PATH="${CUDA_LIBRARY_PATH:-$PWD/$stub}"
  # The bundle embeds gpu/ptx via include_str!: make sure it is current
  # (needs the pip nvcc; TDQ_SKIP_PTX_CHECK=1 on an offline machine).
  if [ "${TDQ_SKIP_PTX_CHECK:-0}" != 1 ]; then bash scripts/gpu-ptx.sh --check; fi
  rm -rf "$bundle"; mkdir -p "$bundle"
  bundle_test cuda_backend -p tdquant-gpu
  cargo build -p tdquant-gpu --release --features cuda --example gpu_parity
  cp target/release/examples/gpu_parity "$bundle/gpu_parity"
  # Calibration on candle's CUDA backend (its kernels built by the pinned nvcc).
  local nvcc_bin
  nvcc_bin="$(bash scripts/gpu-ptx.sh --bin-dir)"
  export PATH="$nvcc_bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  bundle_test calib_cuda -p tdquant-host
  cargo build -p tdquant-host --release --features cuda --bin tdquant
  cp target/release/tdquant "$bundle/tdquant"
  # Later builds without the feature must not pick up this binary.
  cargo build -p tdquant-host --release --bin tdquant
  cp -r assets "$bundle/data"
  strip "$bundle/cuda_backend" "$bundle/gpu_parity" "$bundle/calib_cuda" "$bundle/tdquant" 2>/dev/null || true
  # candle's kernels make these two ~55 MB each; gzip keeps the bundle under
  # the device tool's 64 MiB (run unpacks them).
  gzip -f -6 "$bundle/calib_cuda" "$bundle/tdquant"
  bash scripts/gpu-models.sh "$bundle/models"
  local data="${TDQUANT_DATA:-}"
  if [ -z "$data" ]; then
    if [ -d ../shared/data ]; then data=../shared/data; else data=assets; fi
  fi
  mkdir -p "$bundle/images"
  cp "$data"/benchmark/Set5/LR_bicubic/X4/*.png "$bundle/images/" \
    || die "Set5 LR x4 images not found under $data (set TDQUANT_DATA)"
  git rev-parse HEAD >"$bundle/commit.txt" 2>/dev/null || true
  git status --porcelain -- gpu >>"$bundle/commit.txt" 2>/dev/null || true
  log "bundle: $(du -sh "$bundle" | cut -f1) in $bundle (carry it to the GPU machine, then: scripts/gpu-check.sh run)"
}

# Makes libcuda.so.1 resolve to a real driver (never the stub) or dies.
find_real_driver() {
  local dir
  if ! ldconfig -p | grep -q 'libcuda\.so\.1'; then
    for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat; do
      if [ -e "$dir/libcuda.so.1" ]; then
        export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        break
      fi
    done
  fi
  local resolved
  resolved="$(ldd "$bundle/cuda_backend" | awk '/libcuda\.so\.1/ {print $3}')"
  [ -n "$resolved" ] && [ "$resolved" != "not" ] || die "libcuda.so.1 not found: no NVIDIA driver on this machine"
  if grep -q 'stub libcuda.so.1' "$resolved" 2>/dev/null; then
    die "libcuda.so.1 resolves to the stub ($resolved): unset LD_LIBRARY_PATH"
  fi
  log "driver: $resolved"
}

run_bundle() {
  [ -x "$bundle/cuda_backend" ] || die "$bundle/cuda_backend missing: run 'scripts/gpu-check.sh bundle' on a machine with cargo"
  local logdir="${OUT:-$bundle}"
  mkdir -p "$logdir"
  find_real_driver
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  fi
  local start=$SECONDS

  log "1/3 GPU property tests (GPU vs core oracle, ==; TDQ_REQUIRE_GPU=1)"
  # Serial: one stream, and clean per-test output.
  if ! TDQ_REQUIRE_GPU=1 TDQ_GPU_MODELS="$bundle/models" timeout "$budget_s" \
       "$bundle/cuda_backend" --nocapture --test-threads=1 2>&1 | tee "$logdir/gpu-check.log"; then
    die "GPU property tests (log: $logdir/gpu-check.log)"
  fi
  grep -q 'SKIPPED' "$logdir/gpu-check.log" && die "a GPU test was skipped"

  log "2/3 Set5 x4 parity, CPU oracle vs GPU (W4A4, W3A3, W2A2), and 3/3 kernel benchmark"
  local left=$((budget_s - (SECONDS - start)))
  [ "$left" -gt 30 ] || die "no time left for the Set5 parity run"
  if ! timeout "$left" "$bundle/gpu_parity" --models "$bundle/models" --images "$bundle/images" \
       --bench-size 256 --bench-iters 5 2>&1 | tee "$logdir/gpu-parity.log"; then
    die "Set5 parity or benchmark (log: $logdir/gpu-parity.log)"
  fi
  grep -q 'MISMATCH' "$logdir/gpu-parity.log" && die "a Set5 output differs"
  [ "$(grep -c ' identical$' "$logdir/gpu-parity.log")" -eq 30 ] \
    || die "expected 30 identical Set5 outputs (5 images x 3 bit widths x 2 kernel paths)"

  calib_checks "$logdir"
  log "PASSED in $((SECONDS - start)) s"
}

# Step 4: calibration on candle's CUDA backend (see the header).
calib_checks() {
  local logdir="$1" missing t0=$SECONDS exe
  for exe in calib_cuda tdquant; do
    gzip -dc "$bundle/$exe.gz" >"$bundle/$exe" && chmod +x "$bundle/$exe"
  done
  missing="$(ldd "$bundle/tdquant" | awk '/not found/ {print $1}' | tr '\n' ' ')"
  [ -z "$missing" ] || die "candle's CUDA backend needs the CUDA 13 libraries on this machine; missing: $missing"
  log "4a calibration GPU vs CPU (calib_cuda, TDQ_REQUIRE_GPU=1; data: the embedded bundle)"
  if ! TDQ_REQUIRE_GPU=1 TDQUANT_DATA="$bundle/data" timeout "$calib_budget_s" \
       "$bundle/calib_cuda" --nocapture --test-threads=1 2>&1 | tee "$logdir/calib-cuda.log"; then
    die "calibration GPU vs CPU (log: $logdir/calib-cuda.log)"
  fi
  grep -q 'SKIPPED' "$logdir/calib-cuda.log" && die "a calibration GPU test was skipped"
  local left=$((calib_budget_s - (SECONDS - t0)))
  [ "$left" -gt 60 ] || die "no time left for the DQC benchmark"
  log "4b DQC at the paper batch on the GPU (50 iterations) and the FP forward"
  if ! timeout "$left" "$bundle/tdquant" --data "$bundle/data" bench dqc --device cuda \
       --batch 32 --patch 64 --micro-batch 0 --iters 50 2>&1 | tee "$logdir/calib-bench.log" \
     || ! timeout 120 "$bundle/tdquant" --data "$bundle/data" bench fp --device cuda --size 256 \
       --iters 5 2>&1 | tee -a "$logdir/calib-bench.log"; then
    die "GPU calibration benchmark (log: $logdir/calib-bench.log)"
  fi
  local s_it
  s_it="$(sed -n 's/^dqc step .*median of [0-9]*: \([0-9.]*\) s .*/\1/p' "$logdir/calib-bench.log")"
  [ -n "$s_it" ] || die "no DQC step time in $logdir/calib-bench.log"
  awk -v s="$s_it" 'BEGIN { printf "[gpu-check] paper preset projected: 3000 x %.3f s = %.1f min of DQC\n", s, 3000 * s / 60 }' \
    | tee -a "$logdir/calib-bench.log"
}

case "${1:-all}" in
  bundle) build_bundle ;;
  run) run_bundle ;;
  all) build_bundle; run_bundle ;;
  *) die "usage: $0 [bundle|run]" ;;
esac
