/**
 * Concurrency: several models training at once in one process, and in worker threads, give
 * exactly the results each gives alone; the event loop keeps running meanwhile.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { sequential, type ModelSpec } from 'gyre';

const spec = (seed: number): ModelSpec => ({
  input: { features: 3 },
  layers: [
    { type: 'gru', hiddenSize: 24, numLayers: 2, bidirectional: true },
    { type: 'dense', units: 2 },
  ],
  seed,
});
const x = Array.from({ length: 96 }, (_, i) =>
  Array.from({ length: 4 + (i % 7) }, (_, t) => [Math.sin(i + t), Math.cos(i - t), ((i * t) % 5) / 5]),
);
const y = x.map((s) => s.map(([a, b]) => [a! * b!, a! - b!]));
const options = { loss: 'mse' as const, epochs: 3, batchSize: 16, seed: 2, optimizer: { type: 'adam' as const, learningRate: 0.01 } };

async function trainAlone(seed: number): Promise<Record<string, Float32Array>> {
  const m = sequential(spec(seed));
  await m.fit(x, y, options);
  return Object.fromEntries(Object.entries(m.parameters()).map(([k, v]) => [k, v.data]));
}

function expectSame(a: Record<string, Float32Array>, b: Record<string, Float32Array>): void {
  expect(Object.keys(a)).toEqual(Object.keys(b));
  for (const k of Object.keys(a)) {
    expect(
      Buffer.from(a[k]!.buffer, a[k]!.byteOffset, a[k]!.byteLength).equals(Buffer.from(b[k]!.buffer, b[k]!.byteOffset, b[k]!.byteLength)),
      k,
    ).toBe(true);
  }
}

describe('concurrent training', () => {
  it('three models training at once match each trained alone, while the event loop runs', async () => {
    const alone: Record<string, Float32Array>[] = [];
    for (const seed of [1, 2, 3]) alone.push(await trainAlone(seed));
    const delay = monitorEventLoopDelay({ resolution: 1 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    delay.enable();
    const together = await Promise.all([1, 2, 3].map(trainAlone));
    delay.disable();
    clearInterval(timer);
    together.forEach((t, i) => {
      expectSame(t, alone[i]!);
    });
    expect(ticks).toBeGreaterThan(0);
    console.log(`event-loop delay while 3 models trained: p99 ${(delay.percentile(99) / 1e6).toFixed(2)} ms`);
  });

  it('models trained in worker threads match the same models trained on the main thread', async () => {
    const alone = await trainAlone(7);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { sequential } = require('gyre');
      (async () => {
        const m = sequential(workerData.spec);
        await m.fit(workerData.x, workerData.y, workerData.options);
        const out = {};
        for (const [k, v] of Object.entries(m.parameters())) out[k] = v.data;
        parentPort.postMessage(out);
      })().catch((e) => parentPort.postMessage({ error: String(e) }));
    `;
    const run = () =>
      new Promise<Record<string, Float32Array>>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { spec: spec(7), x, y, options } });
        w.once('message', (m: Record<string, Float32Array> & { error?: string }) => (m.error ? reject(new Error(m.error)) : resolve(m)));
        w.once('error', reject);
      });
    const [a, b] = await Promise.all([run(), run()]);
    expectSame(a, alone);
    expectSame(b, alone);
  });
});
