/**
 * The benchmark suite's record of the addon it measures (benchmark/lib/build.mjs): its content
 * hash, and the Rust sources changed after it was built (an experiment's build left in
 * `native/` after its source was reverted is measured otherwise without a word).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

interface Build {
  addon: string;
  sha256: string;
  builtAt: string;
  newerSources: string[];
}
interface BuildModule {
  addonBuild: (root: string, file: string | null) => Build | null;
}

async function load(): Promise<BuildModule> {
  return (await import(pathToFileURL(join(__dirname, '..', 'benchmark', 'lib', 'build.mjs')).href)) as BuildModule;
}

/** What the suite's worker (benchmark/lib/worker.mjs) answers to the `info` task the run asks. */
function workerInfo(): { simdLevel: string; addon: string | null } {
  const worker = join(__dirname, '..', 'benchmark', 'lib', 'worker.mjs');
  const out = execFileSync(process.execPath, [worker, JSON.stringify({ kind: 'info' })], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  const answer = JSON.parse(line!.slice('RESULT '.length)) as { ok: boolean; result: { simdLevel: string; addon: string | null } };
  expect(answer.ok).toBe(true);
  return answer.result;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A project with an addon, two Rust sources and a Cargo.lock, every file dated `at` (seconds). */
function project(at: number): { root: string; addon: string } {
  const root = mkdtempSync(join(tmpdir(), 'gyre-bench-build-'));
  dirs.push(root);
  mkdirSync(join(root, 'native'));
  mkdirSync(join(root, 'crates', 'core', 'src', 'kernels'), { recursive: true });
  mkdirSync(join(root, 'crates', 'core', 'target'), { recursive: true });
  const addon = join(root, 'native', `gyre.${process.platform}-${process.arch}-gnu.node`);
  const files: [string, string][] = [
    [addon, 'addon bytes'],
    [join(root, 'crates', 'core', 'Cargo.toml'), '[package]'],
    [join(root, 'crates', 'core', 'src', 'lib.rs'), 'mod kernels;'],
    [join(root, 'crates', 'core', 'src', 'kernels', 'x86.rs'), 'fn tile() {}'],
    [join(root, 'crates', 'core', 'target', 'built.rs'), 'generated'],
    [join(root, 'Cargo.lock'), 'version = 4'],
  ];
  for (const [file, text] of files) {
    writeFileSync(file, text);
    utimesSync(file, at, at);
  }
  return { root, addon };
}

describe('the addon a benchmark run measures', () => {
  it("is the .node file gyre's loader loaded (none for the WebAssembly build)", async () => {
    const { simdLevel, addon } = workerInfo();
    if (simdLevel === 'simd128') {
      expect(addon).toBeNull();
    } else {
      expect(addon).toMatch(/gyre\.[\w-]+\.node$/);
      expect(existsSync(addon!)).toBe(true);
    }
  });

  it('names the addon and hashes its content', async () => {
    const { addonBuild } = await load();
    const { root, addon } = project(1_700_000_000);
    const build = addonBuild(root, addon);
    expect(build).not.toBeNull();
    expect(build?.addon).toBe(join('native', `gyre.${process.platform}-${process.arch}-gnu.node`));
    expect(build?.sha256).toBe(createHash('sha256').update('addon bytes').digest('hex').slice(0, 16));
    expect(build?.builtAt).toBe(new Date(1_700_000_000_000).toISOString());
    expect(addonBuild(root, null)).toBeNull();
    expect(addonBuild(root, join(root, 'native', 'missing.node'))).toBeNull();
  });

  it('lists no sources when the addon is as new as every one of them', async () => {
    const { addonBuild } = await load();
    const { root, addon } = project(1_700_000_000);
    expect(addonBuild(root, addon)?.newerSources).toEqual([]);
  });

  it('lists the Rust sources and manifests changed after the build, not build outputs', async () => {
    const { addonBuild } = await load();
    const { root, addon } = project(1_700_000_000);
    // An experiment reverted with `git checkout` after its build: the source is now newer.
    const later = 1_700_000_100;
    for (const file of [
      join(root, 'crates', 'core', 'src', 'kernels', 'x86.rs'),
      join(root, 'Cargo.lock'),
      join(root, 'crates', 'core', 'target', 'built.rs'),
    ]) {
      utimesSync(file, later, later);
    }
    expect(addonBuild(root, addon)?.newerSources).toEqual(['Cargo.lock', join('crates', 'core', 'src', 'kernels', 'x86.rs')]);
    // Rebuilt: the addon is the newest again.
    utimesSync(addon, later + 1, later + 1);
    expect(addonBuild(root, addon)?.newerSources).toEqual([]);
  });
});
