#!/usr/bin/env bash
# Runs every calibration of the README results table on the stand-in x4 model
# and writes docs/results.md and the results section of README.md (via
# scripts/results_table.py).
#
#   bash scripts/results-table.sh            # all rows (~1.5-2 h on 2 cores)
#   bash scripts/results-table.sh --format   # only re-render docs/results.md
#
# Rows: FP; MinMax, Percentile, DOBI (paper mode), DOBI (released mode),
# 2DQuant (quick preset) at W4A4 / W3A3 / W2A2; ablation: 2DQuant W4A4 with the
# feature loss off (lambda = 0); integer-path gaps on B100 for the golden
# released-DOBI bounds at W3A3 / W2A2. "DOBI (paper mode)" is the
# init_bounds.safetensors of the 2DQuant run: the same DOBI pass DQC starts
# from, with the observe stage's wall time.
#
# Every step is skipped when its output already exists, so an interrupted run
# continues where it stopped. The binary is copied first so that rebuilding the
# workspace meanwhile does not change it under the running table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${TDQ_TABLE_DIR:-runs/table}
SETS=Set5,Set14,B100
DATA=${TDQUANT_DATA:-../shared/data}
export TDQUANT_DATA=$DATA

if [[ "${1:-}" != "--format" ]]; then
  cargo build --release -q -p tdquant-host --bin tdquant
  mkdir -p "$OUT/bin"
  cp target/release/tdquant "$OUT/bin/tdquant"
  T="$OUT/bin/tdquant"

  step() { # step <done-marker> <cmd...>
    local marker=$1; shift
    if [[ -e "$marker" ]]; then echo "== skip (done): $*"; return; fi
    echo "== $(date -u +%H:%M:%S) $*"
    "$@"
  }
  calib() { # calib <name> <args...>
    local name=$1; shift
    step "$OUT/$name/report.json" "$T" calibrate --quiet --no-eval --out "$OUT/$name" "$@"
    step "$OUT/$name/eval/eval.json" "$T" eval --bounds "$OUT/$name/bounds.safetensors" \
      --sets "$SETS" --out "$OUT/$name/eval"
  }

  step "$OUT/fp/eval.json" "$T" eval --sets "$SETS" --out "$OUT/fp"
  for b in 4 3 2; do
    calib "minmax-w$b" --method minmax --bits "$b"
    calib "percentile-w$b" --method percentile --bits "$b"
    calib "dobi-released-w$b" --method dobi --dobi-mode released --bits "$b"
    calib "2dquant-w$b" --method 2dquant --bits "$b"
    step "$OUT/2dquant-w$b/init_eval/eval.json" "$T" eval \
      --bounds "$OUT/2dquant-w$b/init_bounds.safetensors" --sets "$SETS" \
      --out "$OUT/2dquant-w$b/init_eval"
  done
  calib "2dquant-nofeat-w4" --method 2dquant --bits 4 --feature-weight 0

  # Integer path vs fake-quant on B100 for the golden released-DOBI bounds.
  for b in 3 2; do
    g="$DATA/golden/dobi_released_w$b.safetensors"
    mkdir -p "$OUT/int-golden-w$b"
    step "$OUT/int-golden-w$b/model.tdq" "$T" export --bounds "$g" --bits "$b" \
      -o "$OUT/int-golden-w$b/model.tdq"
    step "$OUT/int-golden-w$b/int/eval.json" "$T" eval --int "$OUT/int-golden-w$b/model.tdq" \
      --sets B100 --out "$OUT/int-golden-w$b/int"
    step "$OUT/int-golden-w$b/fq/eval.json" "$T" eval --bounds "$g" --bits "$b" \
      --sets B100 --out "$OUT/int-golden-w$b/fq"
  done
fi
python3 scripts/results_table.py "$OUT" docs/results.md README.md
