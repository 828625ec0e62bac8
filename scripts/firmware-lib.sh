# Shared by the scripts/firmware-*.sh checks (sourced, not run): running a
# firmware ELF under QEMU and judging what it printed.

# firmware_run ELF LOG LIMIT [QEMU ARGS...]: runs ELF on the Cortex-M4 of
# QEMU's mps2-an386 for at most LIMIT seconds, with its semihosting output in
# LOG.frames and QEMU's stderr in LOG.stderr, decodes the defmt frames into
# LOG and prints QEMU's exit status (124 = timeout).
firmware_run() {
  local elf=$1 log=$2 limit=$3
  shift 3
  set +e
  timeout "$limit" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic "$@" \
    -semihosting-config enable=on,target=native -kernel "$elf" </dev/null \
    >"$log.frames" 2>"$log.stderr"
  local rc=$?
  set -e
  defmt-print -e "$elf" --log-format '{L} {s}' <"$log.frames" >"$log" 2>&1 || true
  echo "$rc"
}

# firmware_expect_exit0 CHECK RC LOG: fails CHECK (with QEMU's stderr) unless
# QEMU exited with 0.
firmware_expect_exit0() {
  if [ "$2" -ne 0 ]; then
    echo "$1: FAILED — QEMU exited with $2 (124 = timeout)" >&2
    cat "$3.stderr" >&2
    exit 1
  fi
}

# firmware_expect_same CHECK EXPECTED GOT WHAT: fails CHECK, saying WHAT,
# unless the files are identical (the diff is shown).
firmware_expect_same() {
  if ! diff -u "$2" "$3"; then
    echo "$1: FAILED — $4" >&2
    exit 1
  fi
}

# firmware_run_expect CHECK ELF LIMIT LOG LINE EXPECTED: runs ELF as
# firmware_run does, with -icount, prints QEMU's wall time and LOG, and fails
# CHECK unless QEMU exited 0 and the log's `TDQ LINE …` lines (kept in the
# file EXPECTED names with `expected` replaced by `got`) are EXPECTED.
firmware_run_expect() {
  local check=$1 elf=$2 limit=$3 log=$4 line=$5 expected=$6
  local got=${expected%expected.txt}got.txt start rc
  start=$(date +%s)
  rc=$(firmware_run "$elf" "$log" "$limit" -icount shift=0)
  echo "QEMU wall time: $(( $(date +%s) - start )) s"
  cat "$log"
  firmware_expect_exit0 "$check" "$rc" "$log"
  grep -o "TDQ $line .*" "$log" >"$got" || true
  firmware_expect_same "$check" "$expected" "$got" \
    "firmware output hash differs from the host oracle"
}

# firmware_data_root: the data root the CLI picks without --data:
# $TDQUANT_DATA, else ../shared/data beside the checkout, else the bundle
# embedded in assets/ (host/src/data_root.rs). The CLI chooses the weights
# file inside it (.pth, or the bundle's .safetensors: the same tensors).
firmware_data_root() {
  if [ -n "${TDQUANT_DATA:-}" ]; then
    echo "$TDQUANT_DATA"
  elif [ -d "$PWD/../shared/data" ]; then
    echo "$PWD/../shared/data"
  else
    echo "$PWD/assets"
  fi
}

# firmware_export_model BITS: the released W{BITS}A{BITS} integer model of
# the data root (firmware_data_root), exported with the host CLI to
# target/firmware-int/wBITS/model.tdq. Sets data (the data root) and out
# (that folder) for the caller.
firmware_export_model() {
  data=$(firmware_data_root)
  out=$PWD/target/firmware-int/w$1
  mkdir -p "$out"
  cargo host --data "$data" export \
    --bounds "$data/golden/dobi_released_w$1.safetensors" --bits "$1" -o "$out/model.tdq"
}
