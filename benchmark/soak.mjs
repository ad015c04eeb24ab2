// Soak: cycles of create, fit, predict, save, load and dispose in one process; prints the
// resident set size after a warm-up and at the end. Run: node --expose-gc benchmark/soak.mjs [cycles]
// (default 1000). Prints one JSON line last: { cycles, warmup, rssWarmMiB, rssEndMiB, growthMiB }.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import gyre from '../dist/index.js';

const { sequential, loadModel } = gyre;
const cycles = Number(process.argv[2] ?? 1000);
const warmup = Math.min(100, Math.floor(cycles / 4));
const dir = mkdtempSync(join(tmpdir(), 'gyre-soak-'));
const path = join(dir, 'model.safetensors');
const x = Array.from({ length: 32 }, (_, i) => Array.from({ length: 3 + (i % 5) }, (_, t) => [Math.sin(i + t), Math.cos(i * t)]));
const y = x.map((s) => (s.reduce((a, [v]) => a + v, 0) > 0 ? 1 : 0));
const rss = () => {
  globalThis.gc?.();
  return process.memoryUsage().rss / 2 ** 20;
};

let rssWarm = 0;
for (let c = 1; c <= cycles; c++) {
  const model = sequential({
    input: { features: 2 },
    layers: [
      { type: 'lstm', hiddenSize: 16, bidirectional: true, returnSequences: false },
      { type: 'dense', units: 2 },
    ],
    seed: c,
  });
  await model.fit(x, y, { loss: 'crossEntropy', epochs: 1, batchSize: 8 });
  model.predictSync(x.slice(0, 4));
  await model.predict(x.slice(0, 4));
  await model.save(path);
  const back = await loadModel(path);
  back.predictSync(x.slice(0, 2));
  // A stream runs one step at a time: the bidirectional model is refused (the error path is
  // soaked too), a unidirectional one steps.
  let refused = false;
  try {
    back.createStream();
  } catch (e) {
    if (e.code !== 'GYRE_INVALID_ARGUMENT') throw e;
    refused = true;
  }
  if (!refused) throw new Error('createStream on a bidirectional model did not throw');
  const uni = sequential({
    input: { features: 2 },
    layers: [
      { type: 'lstm', hiddenSize: 16 },
      { type: 'dense', units: 2 },
    ],
    seed: c,
  });
  const stream = uni.createStream();
  stream.step([0.1, 0.2]);
  uni.dispose();
  back.dispose();
  model.dispose();
  if (c === warmup) rssWarm = rss();
}
const rssEnd = rss();
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify({
    cycles,
    warmup,
    rssWarmMiB: +rssWarm.toFixed(1),
    rssEndMiB: +rssEnd.toFixed(1),
    growthMiB: +(rssEnd - rssWarm).toFixed(2),
  }),
);
