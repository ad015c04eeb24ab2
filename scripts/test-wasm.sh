#!/usr/bin/env bash
# The WebAssembly build, tested: its SIMD kernels against the portable oracle (the Rust kernel
# tests, built for wasm32-wasip1 with simd128 and run under Node's WASI), then the whole vitest
# suite with GYRE_WASM=1, so that every test runs on gyre-wasm32-wasi's code instead of the
# native addon (tests about the native binary itself skip themselves, naming why).
#
# Needs: the wasm32-wasip1 and wasm32-wasip1-threads Rust targets (`--install` adds them) and
# the WebAssembly build (`npm run build:wasm`, run here unless GYRE_WASM_BUILT=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS
step() { printf '==> %s (%d s)\n' "$1" "$((SECONDS - started))"; }

if [[ "${1:-}" == "--install" ]]; then
  step "Rust targets"
  rustup target add wasm32-wasip1 wasm32-wasip1-threads
fi

step "Rust kernel tests for wasm32-wasip1 + simd128 under Node's WASI (one thread: no pool tests)"
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $PWD/scripts/wasi-run.mjs" \
  cargo test -p gyre-core --lib --release --target wasm32-wasip1 kernels:: -- --skip thread

if [[ "${GYRE_WASM_BUILT:-}" != 1 ]]; then
  step "the WebAssembly addon (npm run build:wasm)"
  npm run build:wasm
fi

step "vitest on the WebAssembly build (GYRE_WASM=1)"
GYRE_WASM=1 npx vitest run
step "done"
