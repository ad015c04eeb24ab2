// Smoke test of a built addon through the package's own loader (dist/index.js -> native/binding.js
// -> native/gyre.<platform>.node): trains an LSTM regressor and a GRU classifier, predicts,
// saves, loads and resumes training. scripts/test-aarch64.sh runs it twice: with the host's Node,
// writing what it computed (--write), then with an arm64 Node under qemu-aarch64 (--arch arm64),
// which runs the same checks on the linux-arm64-gnu addon and compares its numbers with the
// host's (--compare).
//
//   node scripts/arm64-smoke.mjs [--arch ARCH] [--write FILE] [--compare FILE]
//
// Exits non-zero on the first failed check.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: { arch: { type: 'string' }, write: { type: 'string' }, compare: { type: 'string' } },
});

function log(message) {
  console.log(`  smoke (${process.arch}): ${message}`);
}

if (args.arch !== undefined) assert.equal(process.arch, args.arch, 'the Node running this script');
const gyre = require(join(repo, 'dist/index.js'));
const libc = process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl';
const platform = `${process.platform}-${process.arch}${process.platform === 'linux' ? `-${libc}` : ''}`;
const addons = Object.keys(require.cache).filter((file) => file.endsWith('.node'));
assert.deepEqual(addons, [join(repo, 'native', `gyre.${platform}.node`)], 'loaded native addons');
log(`Node ${process.version}, addon native/gyre.${platform}.node, SIMD level ${gyre.simdLevel()}`);
if (process.arch === 'arm64') {
  assert.equal(gyre.simdLevel(), process.env.GYRE_SIMD === 'scalar' ? 'scalar' : 'neon', 'the SIMD level on arm64');
}

const rand = gyre.seededRandom(7);
const sequences = (count, length) => Array.from({ length: count }, () => Array.from({ length }, () => [rand() * 2 - 1]));
const mean = (seq) => seq.reduce((s, [v]) => s + v, 0) / seq.length;

/**
 * Trains `spec` on (x, y), checks that the loss fell below `ratio` of its first epoch, predicts
 * `probe`, and checks that the model saved and loaded predicts the same values and resumes.
 */
async function roundTrip(name, spec, x, y, probe, options, ratio) {
  const model = gyre.sequential(spec);
  const history = await model.fit(x, y, { epochs: 6, batchSize: 16, seed: 5, ...options });
  const losses = history.epochs.map((e) => e.loss);
  log(`${name}: loss ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
  assert.ok(losses.every(Number.isFinite), `${name}: losses are finite`);
  assert.ok(losses.at(-1) < losses[0] * ratio, `${name}: loss fell below ${ratio} of the first epoch's`);
  const before = await model.predict(probe);
  const dir = await mkdtemp(join(tmpdir(), 'gyre-arm64-smoke-'));
  try {
    const file = join(dir, 'model.safetensors');
    await model.save(file, { metadata: { smoke: name } });
    const loaded = await gyre.loadModel(file);
    assert.deepEqual(loaded.metadata, { smoke: name }, `${name}: metadata after load`);
    assert.equal(loaded.trainedEpochs, 6, `${name}: trainedEpochs after load`);
    const after = await loaded.predict(probe);
    assert.deepEqual(after.shape, before.shape, `${name}: prediction shape after load`);
    assert.deepEqual(Array.from(after.data), Array.from(before.data), `${name}: the loaded model predicts the same`);
    const more = await loaded.fit(x, y, { epochs: 1, batchSize: 16, seed: 5, ...options });
    assert.ok(Number.isFinite(more.epochs[0].loss), `${name}: training resumes`);
    log(`${name}: save -> loadModel: the same predictions (${before.data.length} values), training resumes`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { losses, predictions: Array.from(before.data) };
}

// An LSTM (4·16 = 64 gate columns: one full panel) learns the mean of 12 numbers.
const lx = sequences(256, 12);
const lprobe = sequences(64, 12);
const lstm = await roundTrip(
  'lstm',
  {
    input: { features: 1 },
    layers: [
      { type: 'lstm', hiddenSize: 16, returnSequences: false },
      { type: 'dense', units: 1 },
    ],
    seed: 3,
  },
  lx,
  lx.map((s) => [mean(s)]),
  lprobe,
  { loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 } },
  0.5,
);
const truth = lprobe.map(mean);
const average = truth.reduce((s, v) => s + v, 0) / truth.length;
const variance = truth.reduce((s, v) => s + (v - average) ** 2, 0) / truth.length;
const mse = truth.reduce((s, v, i) => s + (lstm.predictions[i] - v) ** 2, 0) / truth.length;
assert.ok(mse < variance / 4, `lstm: held-out mse ${mse} against a variance of ${variance}`);
log(`lstm: held-out mse ${mse.toFixed(4)} (target variance ${variance.toFixed(4)})`);

// A bidirectional GRU of 13 units (39 gate columns: partial vectors and a partial panel) tells
// whether the sum of 10 numbers is positive.
const gx = sequences(256, 10);
const gprobe = sequences(64, 10);
const gru = await roundTrip(
  'gru',
  {
    input: { features: 1 },
    layers: [
      { type: 'gru', hiddenSize: 13, bidirectional: true, returnSequences: false },
      { type: 'dense', units: 2, activation: 'softmax' },
    ],
    seed: 4,
  },
  gx,
  gx.map((s) => (mean(s) > 0 ? 1 : 0)),
  gprobe,
  { loss: 'crossEntropy', optimizer: { type: 'adam', learningRate: 0.005 } },
  0.5,
);
const positive = (i) => gru.predictions[2 * i + 1] > 0.5; // the probability of class 1
const right = gprobe.filter((s, i) => positive(i) === mean(s) > 0).length;
assert.ok(right >= 56, `gru: ${right} of 64 held-out signs right`);
log(`gru: ${right} of 64 held-out signs right`);

const result = { arch: process.arch, lstm, gru };
if (args.write) await writeFile(args.write, JSON.stringify(result));
if (args.compare) {
  // Another architecture's numbers (the host's): the SIMD products and nonlinearities give the
  // same bits on every level, so they should agree closely, if not to the bit.
  const other = JSON.parse(await readFile(args.compare, 'utf8'));
  let largest = 0;
  let identical = true;
  for (const name of ['lstm', 'gru']) {
    for (const key of ['losses', 'predictions']) {
      const [ours, theirs] = [result[name][key], other[name][key]];
      assert.equal(ours.length, theirs.length, `${name} ${key}: as many values as ${other.arch}`);
      ours.forEach((v, i) => {
        identical &&= Object.is(v, theirs[i]);
        largest = Math.max(largest, Math.abs(v - theirs[i]) / Math.max(1, Math.abs(theirs[i])));
      });
    }
  }
  assert.ok(largest <= 1e-4, `losses and predictions within 1e-4 of ${other.arch}'s (largest difference ${largest})`);
  log(
    identical
      ? `losses and predictions identical to ${other.arch}'s, bit for bit`
      : `losses and predictions within ${largest.toExponential(1)} of ${other.arch}'s (not bit for bit)`,
  );
}
