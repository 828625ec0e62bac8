#!/usr/bin/env bash
# Peak memory of large upscales and tiled == untiled on a crop (README, "Large images and bad input").
#
#   scripts/large-image-check.sh [int|fp|crop]...   default: all three
#
#   int   upscale --int of a 4000x4000 LR image (W4 export of the released DOBI bounds): peak RSS
#   fp    FP upscale of a 1500x1500 LR image: peak RSS
#   crop  a 600x520 crop of the 4000x4000 image, --int untiled and with --tile 200: same sha256
#
# Peak RSS is GNU time's "Maximum resident set size". Output in target/large-image-check/.
# Needs python3 with Pillow and NumPy (installed with pip --user when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/firmware-lib.sh

checks=("$@")
[[ ${#checks[@]} -eq 0 ]] && checks=(int fp crop)

python3 -c 'import PIL, numpy' 2>/dev/null || python3 -m pip install --quiet --user pillow numpy
cargo build --release -p tdquant-host --bin tdquant
bin="${CARGO_TARGET_DIR:-target}/release/tdquant"
out=target/large-image-check
mkdir -p "$out"
root=$(firmware_data_root)

[[ -f "$out/lr4000.png" ]] || python3 scripts/make_large_image.py "$root" 4000 "$out/lr4000.png"
[[ -f "$out/w4.tdq" ]] || "$bin" export --bounds "$root/golden/dobi_released_w4.safetensors" --bits 4 -o "$out/w4.tdq"

peak_rss() { # NAME CMD...: runs CMD under GNU time, prints its peak RSS
  local name=$1
  shift
  /usr/bin/time -v "$@" 2>"$out/$name.log" || { tail -20 "$out/$name.log"; exit 1; }
  local kb
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/$name.log")
  local wall
  wall=$(awk -F'): ' '/Elapsed \(wall clock\)/ {print $2}' "$out/$name.log")
  printf '%s: peak RSS %s kB (%.2f GiB), wall %s\n' "$name" "$kb" "$(echo "$kb / 1048576" | bc -l)" "$wall"
}

for c in "${checks[@]}"; do
  case $c in
    int)
      peak_rss int4000 "$bin" upscale --int "$out/w4.tdq" "$out/lr4000.png" -o "$out/hr4000-int.png"
      ;;
    fp)
      [[ -f "$out/lr1500.png" ]] || python3 scripts/make_large_image.py "$root" 1500 "$out/lr1500.png"
      peak_rss fp1500 "$bin" upscale "$out/lr1500.png" -o "$out/hr1500-fp.png"
      ;;
    crop)
      python3 scripts/make_large_image.py --crop "$out/lr4000.png" 1700 2100 600 520 "$out/crop.png"
      "$bin" upscale --int "$out/w4.tdq" "$out/crop.png" -o "$out/crop-untiled.png" 2>/dev/null
      "$bin" upscale --int "$out/w4.tdq" "$out/crop.png" -o "$out/crop-tile200.png" --tile 200 2>/dev/null
      a=$(sha256sum <"$out/crop-untiled.png" | cut -d' ' -f1)
      b=$(sha256sum <"$out/crop-tile200.png" | cut -d' ' -f1)
      echo "crop 600x520: untiled $a, --tile 200 $b"
      [[ "$a" == "$b" ]] || { echo "crop: FAILED, tiled output differs from untiled" >&2; exit 1; }
      ;;
    *) echo "unknown check $c (int, fp, crop)" >&2; exit 2 ;;
  esac
done
