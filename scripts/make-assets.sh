#!/usr/bin/env bash
# Rebuilds the embedded data bundle assets/ from the shared data folder
# (default ../shared/data). Deterministic: a rerun gives the same bytes, which
# assets/SHA256SUMS pins (`sha256sum -c` in assets/ checks them).
#
#   scripts/make-assets.sh [shared data folder]
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${1:-../shared/data}"
crops="${TDQ_ASSET_CROPS:-16}"
[ -d "$shared/models" ] || { echo "make-assets: $shared is not the shared data folder" >&2; exit 1; }
rm -rf assets/models assets/benchmark assets/calib assets/golden
mkdir -p assets/models assets/benchmark/Set5/LR_bicubic assets/golden
cargo run --release -p tdquant-host --example make_assets -- "$shared" assets "$crops"
cp "$shared/benchmark/Set5/HR" -r assets/benchmark/Set5/HR
cp "$shared/benchmark/Set5/LR_bicubic/X4" -r assets/benchmark/Set5/LR_bicubic/X4
cp "$shared"/golden/dobi_released_w{2,3,4}.safetensors assets/golden/
chmod -R u+w assets
(cd assets && find models benchmark calib golden -type f | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
du -sh assets
