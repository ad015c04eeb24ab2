/**
 * Panic containment: a debug build of the addon (debug builds alone carry the hooks of
 * crates/gyre-node/src/debug.rs) injects panics on the synchronous, asynchronous, callback and
 * training-progress paths; each reaches JavaScript as an error and the process lives on.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
let addon = '';

beforeAll(() => {
  if (process.env.GYRE_WASM === '1') return; // the tests below are skipped
  // A debug build of the binding (cargo's dev profile), loaded through the generated loader's
  // NAPI_RS_NATIVE_LIBRARY_PATH override in a child process.
  execFileSync('cargo', ['build', '-p', 'gyre-node', '--quiet'], { cwd: root, stdio: 'inherit' });
  const built = join(root, 'target', 'debug', process.platform === 'darwin' ? 'libgyre_node.dylib' : 'libgyre_node.so');
  expect(existsSync(built)).toBe(true);
  addon = join(mkdtempSync(join(tmpdir(), 'gyre-debug-')), 'gyre.debug.node');
  copyFileSync(built, addon);
}, 600_000);

/** Runs `script` in a child Node process on the debug addon; returns its JSON result. */
function inChild(script: string, env: Record<string, string> = {}): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['-e', script], {
    cwd: root,
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: addon, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

// About the native addon: its debug build carries the panic hooks, and WebAssembly builds abort
// on a panic (no unwinding in wasm32-wasip1-threads), which Node reports as a RuntimeError.
describe.skipIf(process.env.GYRE_WASM === '1')('panics never take the process down', () => {
  it('sync, async and callback paths throw or reject, and the process goes on', () => {
    const r = inChild(`
      const raw = require(process.env.NAPI_RS_NATIVE_LIBRARY_PATH);
      const out = {};
      const catchSync = (f) => { try { f(); return ['no error']; } catch (e) { return [e.message, e.code]; } };
      [out.sync, out.syncCode] = catchSync(() => raw.debugPanicSync());
      let called = false;
      [out.callback, out.callbackCode] = catchSync(() => raw.debugPanicAfterCallback(() => { called = true; }));
      out.called = called;
      raw.debugPanicAsync().then(() => { out.async = 'resolved'; }, (e) => { out.async = e.message; out.asyncCode = e.code; })
        .finally(() => { out.alive = true; console.log(JSON.stringify(out)); });
    `);
    expect(r.sync).toMatch(/injected panic \(sync\)/);
    expect(r.syncCode).toBe('GYRE_INTERNAL');
    expect(r.callback).toMatch(/injected panic \(callback\)/);
    expect(r.callbackCode).toBe('GYRE_INTERNAL');
    expect(r.called).toBe(true);
    expect(r.async).toMatch(/injected panic \(async\)/);
    expect(r.asyncCode).toBe('GYRE_INTERNAL');
    expect(r.alive).toBe(true);
  });

  it('a panic inside training surfaces as GYRE_INTERNAL from fit; other models keep working', () => {
    const r = inChild(
      `
      const { sequential } = require('gyre');
      const spec = { input: { features: 1 }, layers: [{ type: 'gru', hiddenSize: 4 }, { type: 'dense', units: 1 }] };
      const x = [[[0.1], [0.2]], [[0.3], [0.4]]];
      const y = [[[0.2], [0.3]], [[0.4], [0.5]]];
      const model = sequential(spec);
      model.fit(x, y, { loss: 'mse', onProgress: () => {} }).then(
        () => console.log(JSON.stringify({ fit: 'resolved' })),
        (e) => {
          const other = sequential(spec);
          const p = other.predictSync(x);
          console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, otherWorks: p.data.length === 4 }));
        },
      );
    `,
      { GYRE_DEBUG_PANIC: 'progress' },
    );
    expect(r.code).toBe('GYRE_INTERNAL');
    expect(r.message).toMatch(/injected panic \(training progress callback\)/);
    expect(r.otherWorks).toBe(true);
  });
});
