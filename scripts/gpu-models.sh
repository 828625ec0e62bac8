#!/usr/bin/env bash
# Exports the integer models of the GPU checks into DIR (w4.tdq, w3.tdq,
# w2.tdq): the stand-in x4 model with the golden released-DOBI bounds
# (golden/dobi_released_w*.safetensors under $TDQUANT_DATA, ../shared/data or
# the embedded assets/, the first that exists). Files already there
# are kept; delete DIR to regenerate.
#
#   scripts/gpu-models.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:?usage: $0 DIR}"
data="${TDQUANT_DATA:-}"
if [ -z "$data" ]; then
  if [ -d ../shared/data ]; then data=../shared/data; else data=assets; fi
fi
mkdir -p "$dir"
for b in 4 3 2; do
  [ -s "$dir/w$b.tdq" ] && continue
  golden="$data/golden/dobi_released_w$b.safetensors"
  [ -f "$golden" ] || { echo "[gpu-models] $golden not found (set TDQUANT_DATA)" >&2; exit 1; }
  cargo run --release --quiet -p tdquant-host --bin tdquant -- \
    --data "$data" export --bounds "$golden" --bits "$b" -o "$dir/w$b.tdq" >&2
done
ls -l "$dir" >&2
