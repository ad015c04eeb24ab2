/**
 * Soak, short form: cycles of create, fit, predict, save, load and dispose in one process
 * (benchmark/soak.mjs; the full 1,000 cycles run as `node --expose-gc benchmark/soak.mjs`).
 * Resident memory after warm-up must not grow by more than 10 MiB. Also: native weight memory
 * is reported to V8 and released by dispose.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backend, sequential } from 'gyre';

describe('soak', () => {
  // About the native addon's allocator: a WebAssembly instance's memory only grows (to its
  // high-water mark), so resident memory does not measure its leaks.
  it.skipIf(backend() === 'wasm')(
    'keeps resident memory flat over 300 create/fit/predict/save/load/dispose cycles',
    () => {
      const out = execFileSync(process.execPath, ['--expose-gc', join(__dirname, '..', 'benchmark', 'soak.mjs'), '300'], {
        encoding: 'utf8',
      });
      const r = JSON.parse(out.trim().split('\n').pop()!) as { growthMiB: number; cycles: number };
      console.log(`soak: ${JSON.stringify(r)}`);
      expect(r.cycles).toBe(300);
      expect(r.growthMiB).toBeLessThanOrEqual(10);
    },
    300_000,
  );

  it('reports native weight memory to V8 and releases it on dispose', async () => {
    const model = sequential({
      input: { features: 8 },
      layers: [
        { type: 'lstm', hiddenSize: 64, numLayers: 2 },
        { type: 'dense', units: 4 },
      ],
    });
    expect(model.nativeBytes).toBe(model.parameterCount * 4);
    await model.fit([[[1, 2, 3, 4, 5, 6, 7, 8]]], [[[0, 1, 0, 1]]], { loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 } });
    expect(model.nativeBytes).toBe(model.parameterCount * 4 * 3); // weights + Adam's two moments
    model.dispose();
    expect(model.nativeBytes).toBe(0);
  });
});
