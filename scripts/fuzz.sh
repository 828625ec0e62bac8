#!/usr/bin/env bash
# Fuzz every input parser of tdquant (see README, "Fuzzing").
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]   each target for MINUTES (default 10), one at a time,
#                                           at nice 19; targets: pth tdq bounds checkpoint image
#   scripts/fuzz.sh --smoke                 the CI smoke: the stable mutation fuzzer, 20 s per
#                                           target (under 2 minutes in all), then the replay
#                                           of the regression corpus
#
# Engine: TDQ_FUZZ_ENGINE=auto (default) uses libFuzzer (coverage-guided, through cargo-fuzz on
# the nightly toolchain) when both are installed, else the structure-aware mutation fuzzer,
# which runs on stable; =libfuzzer or =mutate forces one. Both enforce the same limits: a
# panic or abort is a crash, an input running over 10 s a hang, more than 1 GiB allocated a
# finding. Findings: libFuzzer's in fuzz/artifacts/TARGET/, the mutation fuzzer's in
# fuzz/out/TARGET/; once fixed, copy each into fuzz/regressions/TARGET/ (replayed by
# `cargo test -p tdquant-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(pth tdq bounds checkpoint image)

if [[ "${1:-}" == "--smoke" ]]; then
  cargo build --release -p tdquant-fuzz --bin mutate
  bin="${CARGO_TARGET_DIR:-target}/release/mutate"
  "$bin" all --seconds 20
  cargo test --release -p tdquant-fuzz --test regressions
  exit 0
fi

minutes="${1:-10}"
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
seconds=$((minutes * 60))

engine="${TDQ_FUZZ_ENGINE:-auto}"
if [[ "$engine" == auto ]]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly' && cargo fuzz --version >/dev/null 2>&1; then
    engine=libfuzzer
  else
    engine=mutate
  fi
fi
echo "fuzz engine: $engine, ${minutes} min per target: ${targets[*]}"

cargo build --release -p tdquant-fuzz --bin mutate
mutate="${CARGO_TARGET_DIR:-target}/release/mutate"

# A real .tdq export as an extra seed (700 KB, not committed), when the data is present.
seed_dir=fuzz/out/seeds
mkdir -p "$seed_dir"
if [[ ! -f "$seed_dir/w4.tdq" ]]; then
  root="${TDQUANT_DATA:-../shared/data}"
  if [[ -f "$root/golden/dobi_released_w4.safetensors" ]]; then
    cargo run --release --quiet -p tdquant-host --bin tdquant -- export \
      --bounds "$root/golden/dobi_released_w4.safetensors" --bits 4 -o "$seed_dir/w4.tdq" || true
  fi
fi
export TDQ_FUZZ_SEEDS="$PWD/$seed_dir"

status=0
for t in "${targets[@]}"; do
  if [[ "$engine" == libfuzzer ]]; then
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    "$mutate" "$t" --write-seeds fuzz/corpus
    cp -n fuzz/regressions/"$t"/* "$corpus"/ 2>/dev/null || true
    [[ "$t" == tdq && -f "$seed_dir/w4.tdq" ]] && cp -n "$seed_dir/w4.tdq" "$corpus/"
    echo "==> libFuzzer $t, $minutes min"
    rc=0
    nice -n 19 cargo +nightly fuzz run --fuzz-dir fuzz --features libfuzzer --sanitizer none \
      --target-dir "${TDQ_FUZZ_TARGET_DIR:-target-fuzz}" "$t" "$corpus" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=1024 \
      -max_len=1048576 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
      >"fuzz/out/libfuzzer-$t.log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ +DONE|stat::|==[0-9]+== ERROR|SUMMARY|Test unit written)' \
      "fuzz/out/libfuzzer-$t.log" || true
    [[ $rc -ne 0 ]] && { echo "libFuzzer $t: exit $rc (log: fuzz/out/libfuzzer-$t.log)"; status=1; }
  else
    echo "==> mutation fuzzer $t, $minutes min"
    nice -n 19 "$mutate" "$t" --seconds "$seconds" || status=1
  fi
done
exit "$status"
