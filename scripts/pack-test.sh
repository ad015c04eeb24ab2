#!/usr/bin/env bash
# Install test of the published form of gyre: packs the main package and this platform's
# package (gyre-<platform>, from npm/<platform>/ plus the built addon; with
# GYRE_PACK_PLATFORM=wasm32-wasi the WebAssembly package instead) the way a release does,
# installs both tarballs into an empty project with no network, no npm cache and no Rust
# toolchain on PATH, and runs scripts/pack-smoke.mjs there (require + import, fit, predict,
# save, load). Then removes the platform package and checks that loading gyre fails with
# GYRE_NATIVE_UNAVAILABLE naming the platform.
#
# Needs: dist/ (npm run build:ts) and the addon (npm run build:native). Environment:
#   GYRE_NATIVE_BINARY  the .node file to pack (default native/gyre.<platform>.node)
#   GYRE_PACK_PLATFORM  the platform suffix (default: this machine's, e.g. linux-x64-gnu), or
#                       wasm32-wasi: the WebAssembly package alone (npm run build:wasm)
#   KEEP_TMP=1          keep the temporary directory for inspection
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
started=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gyre-pack-test.XXXXXX")
step_name="setup"

finish() {
  local status=$?
  if [[ "${KEEP_TMP:-}" == 1 ]]; then
    echo "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  if [[ $status -eq 0 ]]; then
    echo "PASS: pack test ($platform_desc) in $((SECONDS - started)) s"
  else
    echo "FAIL: pack test, step '$step_name' (exit $status) after $((SECONDS - started)) s" >&2
  fi
  exit "$status"
}
platform_desc="?"
trap finish EXIT
trap 'exit 130' INT TERM

step() {
  step_name=$1
  printf '==> %s (%d s)\n' "$1" "$((SECONDS - started))"
}
fail() {
  echo "error: $*" >&2
  exit 1
}
# Runs a command, showing its output only when it fails.
quiet() {
  local out=$tmp/cmd.log
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    fail "command failed: $*"
  fi
}

step "checks"
platform=${GYRE_PACK_PLATFORM:-$(node -p '
  const p = process.platform, a = process.arch;
  const abi = p === "linux"
    ? (process.report.getReport().header.glibcVersionRuntime ? "-gnu" : "-musl")
    : p === "win32" ? "-msvc" : "";
  `${p}-${a}${abi}`')}
platform_desc="gyre-$platform, node $(node --version), npm $(npm --version)"
# The WebAssembly package (platform wasm32-wasi) carries the module, its loaders and workers
# (npm/wasm32-wasi/package.json "files", from npm run build:wasm) instead of a .node file.
if [[ "$platform" == wasm32-wasi ]]; then
  binary=$repo/native/gyre.wasm32-wasi.wasm
  artifact=gyre.wasm32-wasi.wasm
else
  binary=${GYRE_NATIVE_BINARY:-$repo/native/gyre.$platform.node}
  artifact=gyre.$platform.node
fi
version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
[[ -f "$repo/npm/$platform/package.json" ]] || fail "no npm/$platform/ (napi create-npm-dirs)"
[[ -f "$binary" ]] || fail "no $binary: build it with npm run build:$([[ "$platform" == wasm32-wasi ]] && echo wasm || echo native)"
[[ -f "$repo/dist/index.js" ]] || fail "no dist/index.js: build it with npm run build:ts"
[[ "$(node -p 'require(process.argv[1]).version' "$repo/npm/$platform/package.json")" == "$version" ]] ||
  fail "npm/$platform/package.json is not at version $version"
echo "platform $platform, gyre $version, addon $binary"

step "pack gyre"
mkdir -p "$tmp/pack" "$tmp/home" "$tmp/bin" "$tmp/project"
(cd "$repo" && quiet npm pack --ignore-scripts --pack-destination "$tmp/pack")
main_tgz=$tmp/pack/gyre-$version.tgz
[[ -f "$main_tgz" ]] || fail "npm pack did not write $main_tgz"
tar -tzf "$main_tgz" >"$tmp/main.files"
grep -qx 'package/dist/index.js' "$tmp/main.files" || fail "the tarball has no dist/index.js"
grep -qx 'package/native/binding.js' "$tmp/main.files" || fail "the tarball has no native/binding.js"
if grep '\.node$' "$tmp/main.files"; then fail "the gyre tarball holds a .node file; addons belong in gyre-<platform>"; fi
# The published package.json lists every npm/<platform>/ package as an optional dependency at
# the package's version. `napi prepublish` writes them at publish time (.github/workflows/ci.yml);
# when package.json does not carry them, do the same to the packed copy and pack it again.
mkdir "$tmp/main"
tar -xzf "$main_tgz" -C "$tmp/main"
optional=$(node - "$repo/npm" "$tmp/main/package/package.json" <<'JS'
const { readdirSync, readFileSync, writeFileSync } = require('node:fs');
const [npmDir, file] = process.argv.slice(2);
const pkg = JSON.parse(readFileSync(file, 'utf8'));
const names = readdirSync(npmDir).map((d) => JSON.parse(readFileSync(`${npmDir}/${d}/package.json`, 'utf8')).name);
if (pkg.optionalDependencies === undefined) {
  pkg.optionalDependencies = Object.fromEntries(names.map((name) => [name, pkg.version]));
  writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n');
  console.log('added to the packed package.json, as napi prepublish does');
} else {
  const wrong = names.filter((name) => pkg.optionalDependencies[name] !== pkg.version);
  if (wrong.length > 0) {
    console.error(`package.json optionalDependencies lack ${wrong.map((n) => `${n}@${pkg.version}`).join(', ')}`);
    process.exit(1);
  }
  console.log('present in package.json');
}
JS
)
if [[ "$optional" == added* ]]; then
  (cd "$tmp/main/package" && quiet npm pack --ignore-scripts --pack-destination "$tmp/pack")
fi
echo "optionalDependencies $optional:"
tar -xzOf "$main_tgz" package/package.json | node -e '
  const pkg = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  console.log("  " + Object.entries(pkg.optionalDependencies).map(([n, v]) => `${n}@${v}`).join(" "))'
echo "$(basename "$main_tgz"): $(wc -l <"$tmp/main.files") files, $(du -k "$main_tgz" | cut -f1) kB"

step "pack gyre-$platform"
cp -R "$repo/npm/$platform" "$tmp/platform"
if [[ "$platform" == wasm32-wasi ]]; then
  for file in $(node -p 'require(process.argv[1]).files.join(" ")' "$repo/npm/$platform/package.json"); do
    [[ -f "$repo/native/$file" ]] || fail "no native/$file: build it with npm run build:wasm"
    cp "$repo/native/$file" "$tmp/platform/$file"
  done
else
  cp "$binary" "$tmp/platform/$artifact"
fi
(cd "$tmp/platform" && quiet npm pack --ignore-scripts --pack-destination "$tmp/pack")
platform_tgz=$tmp/pack/gyre-$platform-$version.tgz
[[ -f "$platform_tgz" ]] || fail "npm pack did not write $platform_tgz"
tar -tzf "$platform_tgz" | grep -qx "package/$artifact" || fail "$artifact is not in $platform_tgz"
echo "$(basename "$platform_tgz"): $(du -k "$platform_tgz" | cut -f1) kB"

step "pack the runtime dependencies"
# gyre's own dependencies (commander, cli-progress, ...) come from the registry in a real
# install; here the test has no network, so their tarballs are packed from node_modules (the
# transitive closure of package.json's "dependencies") and installed alongside.
mkdir -p "$tmp/deps"
deps=$(node - "$repo" "$tmp/platform" <<'JS'
const { readFileSync, existsSync } = require('node:fs');
const { join, dirname } = require('node:path');
const [repo, platformDir] = process.argv.slice(2);
const seen = new Map();
// Resolves like Node: the nearest node_modules/<name> from the requiring package upwards.
function resolve(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === dirname(dir) || dir === dirname(repo)) throw new Error(`cannot find ${name} from ${from}`);
  }
}
function visit(dir, from = dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  for (const name of Object.keys(pkg.dependencies ?? {})) {
    const at = resolve(name, from);
    if (!seen.has(at)) {
      seen.set(at, name);
      visit(at);
    }
  }
}
visit(repo);
// The platform package's own (the WebAssembly runtime), as installed in the repository.
visit(platformDir, repo);
console.log([...seen.keys()].join('\n'));
JS
)
while IFS= read -r dep; do
  [[ -n "$dep" ]] || continue
  (cd "$tmp/deps" && quiet npm pack --ignore-scripts "$dep")
done <<<"$deps"
dep_tgzs=("$tmp"/deps/*.tgz)
echo "${#dep_tgzs[@]} runtime dependencies: $(cd "$tmp/deps" && echo *.tgz)"

step "install offline, without Rust"
# PATH holds node and npm only: no cargo, rustc or compiler for an install step to fall back on.
ln -s "$(command -v node)" "$tmp/bin/node"
ln -s "$(command -v npm)" "$tmp/bin/npm"
for tool in cargo rustc rustup; do
  if PATH=$tmp/bin command -v "$tool" >/dev/null; then fail "$tool is reachable on the test PATH"; fi
done
echo '{ "name": "gyre-pack-test", "version": "0.0.0", "private": true }' >"$tmp/project/package.json"
cp "$repo/scripts/pack-smoke.mjs" "$tmp/project/pack-smoke.mjs"
# Empty HOME and cache, --offline, and an unreachable registry: nothing can be downloaded. The
# other platforms' optional packages cannot be resolved then, which npm must tolerate.
clean_env=(env -i "PATH=$tmp/bin" "HOME=$tmp/home" "TMPDIR=$tmp" "GYRE_PACK_PLATFORM=$platform"
  "npm_config_cache=$tmp/home/.npm" "npm_config_update_notifier=false")
# The WebAssembly package declares cpu wasm32, which npm installs on another CPU only when
# forced (the README says so: npm install --force gyre-wasm32-wasi).
cpu=()
[[ "$platform" == wasm32-wasi ]] && cpu=(--force)
(cd "$tmp/project" && "${clean_env[@]}" npm install --offline --no-audit --no-fund "${cpu[@]}" \
  --registry=http://127.0.0.1:9/ "$main_tgz" "$platform_tgz" "${dep_tgzs[@]}") 2>&1 | sed 's/^/  npm: /'
[[ -f "$tmp/project/node_modules/gyre/package.json" ]] || fail "gyre was not installed"
[[ -f "$tmp/project/node_modules/gyre-$platform/$artifact" ]] || fail "gyre-$platform was not installed"
installed=$(cd "$tmp/project/node_modules" && echo gyre*)
[[ -x "$tmp/project/node_modules/.bin/gyre" ]] || fail "the gyre command was not installed in node_modules/.bin"
[[ "$installed" == "gyre gyre-$platform" ]] || fail "installed packages: $installed"
echo "installed: $installed"

step "smoke test"
(cd "$tmp/project" && "${clean_env[@]}" node pack-smoke.mjs installed)

step "the gyre command"
printf 'anna\nbella\ncarla\ndora\nemma\n' >"$tmp/project/tiny.txt"
(cd "$tmp/project" && "${clean_env[@]}" ./node_modules/.bin/gyre train tiny.txt --epochs 2 --hidden 8 --samples 2 --quiet) >"$tmp/cli.log" 2>&1 ||
  { cat "$tmp/cli.log" >&2; fail "gyre train failed in the installed package"; }
grep -q 'model saved to tiny.safetensors' "$tmp/cli.log" || { cat "$tmp/cli.log" >&2; fail "gyre train did not save the model"; }
(cd "$tmp/project" && "${clean_env[@]}" ./node_modules/.bin/gyre info tiny.safetensors) | sed 's/^/  /'

step "without the platform package"
rm -rf "$tmp/project/node_modules/gyre-$platform"
(cd "$tmp/project" && "${clean_env[@]}" node pack-smoke.mjs missing)
step "done"
