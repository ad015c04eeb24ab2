#!/usr/bin/env bash
# Fuzzes the safetensors reader (gyre_core::io::safetensors::parse) with cargo-fuzz / libFuzzer
# for a bounded time, then prints the number of executions and of crashes.
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]     (SECONDS defaults to 60)
#
# Installs cargo-fuzz from crates.io when it is missing. cargo-fuzz needs a nightly compiler
# (for -Zsanitizer=address): an installed `nightly` toolchain is used when rustup has one,
# otherwise the default toolchain with RUSTC_BOOTSTRAP=1.
#
# The corpus grows in fuzz/corpus/safetensors_parse (git-ignored; seeded with a few valid
# files on first use); the malformed corpus of the tests (crates/gyre-core/tests/malformed)
# is read as extra seeds. A crashing input lands in fuzz/artifacts/safetensors_parse/; replay
# it with `cargo fuzz run safetensors_parse <file>` from fuzz/. Exits non-zero on a crash.
set -euo pipefail

SECS="${1:-60}"
if [ "$#" -gt 0 ]; then shift; fi
case "$SECS" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [libFuzzer flags...]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TARGET=safetensors_parse
CORPUS="$FUZZ/corpus/$TARGET"
ARTIFACTS="$FUZZ/artifacts/$TARGET"
SEEDS="$ROOT/crates/gyre-core/tests/malformed"
LOG="$FUZZ/artifacts/$TARGET.log"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found: installing it from crates.io (cargo install cargo-fuzz)"
  cargo install cargo-fuzz --locked
fi

TOOLCHAIN=()
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
  TOOLCHAIN=(+nightly)
  echo "toolchain: $(rustup run nightly rustc --version)"
else
  export RUSTC_BOOTSTRAP=1
  echo "toolchain: $(rustc --version), with RUSTC_BOOTSTRAP=1 (no nightly installed)"
fi

# The 8-byte little-endian length, as printf escapes.
le64() {
  local n=$1 i out=""
  for i in 0 1 2 3 4 5 6 7; do out+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
  printf '%s' "$out"
}

# A valid file: header (ASCII JSON) and data given as printf escapes.
seed() {
  local name=$1 header=$2 data=$3
  # shellcheck disable=SC2059 # the escapes are meant to be interpreted
  { printf "$(le64 ${#header})"; printf '%s' "$header"; printf "$data"; } >"$CORPUS/seed-$name"
}

mkdir -p "$CORPUS" "$ARTIFACTS"
if [ -z "$(ls -A "$CORPUS")" ]; then
  seed empty '{}' ''
  seed metadata '{"__metadata__":{"format":"pt"}}  ' ''
  seed f32 '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' '\x00\x00\x80\x3f\x00\x00\x00\xc0'
  seed mixed '{"w":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[],"data_offsets":[4,6]},"e":{"dtype":"U8","shape":[0],"data_offsets":[6,6]},"i":{"dtype":"I32","shape":[1],"data_offsets":[6,10]}}' '\x00\x3c\x00\xc0\x80\x3f\x07\x00\x00\x00'
  seed packed '{"q":{"dtype":"F4","shape":[2],"data_offsets":[0,1]},"c":{"dtype":"C64","shape":[1],"data_offsets":[1,9]},"d":{"dtype":"F64","shape":[1],"data_offsets":[9,17]}}' '\x21\x00\x00\x80\x3f\x00\x00\x00\x00\x9a\x99\x99\x99\x99\x99\xb9\x3f'
fi

before=$(ls -1 "$ARTIFACTS" | sort)
cd "$FUZZ"
echo "fuzzing $TARGET for ${SECS}s (log: $LOG)"
set +e
# -malloc_limit_mb: any single allocation over 16 MiB is reported as a crash; inputs are at
# most 64 KiB, so the parser may never allocate that much whatever a header claims.
cargo "${TOOLCHAIN[@]}" fuzz run "$TARGET" "$CORPUS" "$SEEDS" -- \
  -max_total_time="$SECS" -max_len=65536 -malloc_limit_mb=16 -rss_limit_mb=2048 -timeout=10 \
  -dict="$FUZZ/safetensors.dict" -print_final_stats=1 "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -n 1)
if [ -z "$runs" ]; then runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$LOG" | tail -n 1); fi
new=$(comm -13 <(printf '%s\n' "$before") <(ls -1 "$ARTIFACTS" | sort) | sed '/^$/d')
crashes=$(printf '%s' "$new" | grep -c . || true)
echo
echo "executions: ${runs:-unknown}"
echo "crashes: $crashes"
if [ "$crashes" -gt 0 ]; then
  while read -r f; do echo "  fuzz/artifacts/$TARGET/$f"; done <<<"$new"
fi
if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
  echo "fuzzing FAILED (cargo fuzz exit status $status)"
  exit 1
fi
echo "fuzzing passed"
