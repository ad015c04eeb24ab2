/**
 * Which build of gyre's native addon a benchmark run measures. The suite loads whatever addon
 * is in `native/` (or at NAPI_RS_NATIVE_LIBRARY_PATH; the worker's `info` task reports the file
 * gyre's loader chose): after an experiment's source is reverted
 * with `git checkout`, the experiment's build is still there and would be measured silently.
 * `addonBuild` names the addon and its content hash, and lists the Rust sources changed since it
 * was built (newer files than the addon), which the run reports before it starts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** Rust sources and manifests under `root/crates` (recursively), and `root/Cargo.lock`. */
function rustSources(root) {
  const out = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'target' && entry.name !== 'node_modules') walk(file);
      } else if (entry.name.endsWith('.rs') || entry.name === 'Cargo.toml') out.push(file);
    }
  };
  if (existsSync(path.join(root, 'crates'))) walk(path.join(root, 'crates'));
  if (existsSync(path.join(root, 'Cargo.lock'))) out.push(path.join(root, 'Cargo.lock'));
  return out;
}

/**
 * `{ addon, sha256, builtAt, newerSources }` for the addon at `file` (a path, or null when there
 * is none: then null): its path relative to `root`, the first 16 hex digits of its SHA-256, its
 * modification time (ISO 8601), and the Rust sources under `root` modified after it (paths
 * relative to `root`, sorted) — non-empty when the addon may not be the sources' build.
 */
export function addonBuild(root, file) {
  if (!file || !existsSync(file)) return null;
  const built = statSync(file).mtimeMs;
  const newerSources = rustSources(root)
    .filter((f) => statSync(f).mtimeMs > built)
    .map((f) => path.relative(root, f))
    .sort();
  return {
    addon: path.relative(root, file),
    sha256: createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16),
    builtAt: new Date(built).toISOString(),
    newerSources,
  };
}
