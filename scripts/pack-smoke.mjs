// Smoke test of an installed gyre, run by scripts/pack-test.sh from inside a temporary project
// where `gyre` and its platform package were installed from their tarballs.
//
//   node pack-smoke.mjs installed   require + import, train a small LSTM, predict, save, load
//   node pack-smoke.mjs missing     the platform package was removed: loading must fail clearly
//
// Exits non-zero on the first failed check.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const platform = process.env.GYRE_PACK_PLATFORM; // e.g. linux-x64-gnu, set by pack-test.sh
assert.ok(platform, 'GYRE_PACK_PLATFORM is not set');
const platformPackage = `gyre-${platform}`;

function log(message) {
  console.log(`  smoke: ${message}`);
}

async function installed() {
  // Both module systems must resolve the installed package, and to the same module.
  const cjs = require('gyre');
  const esm = await import('gyre');
  for (const name of ['sequential', 'loadModel', 'fromBuffer', 'GyreError', 'lstmForward']) {
    assert.equal(typeof cjs[name], 'function', `require('gyre').${name}`);
    assert.equal(esm[name], cjs[name], `import('gyre').${name} is require('gyre').${name}`);
  }
  log(`require('gyre') and import('gyre') both load (${Object.keys(cjs).length} exports)`);

  // The addon must come from the platform package, not from a file packed into gyre itself.
  const gyreDir = dirname(require.resolve('gyre/package.json'));
  const platformDir = dirname(require.resolve(`${platformPackage}/package.json`));
  const addons = Object.keys(require.cache).filter((file) => file.endsWith('.node'));
  if (platform === 'wasm32-wasi') {
    // The WebAssembly package alone: no native addon anywhere, its loader from its own package.
    assert.deepEqual(addons, [], 'no native addon is loaded');
    assert.ok(require.cache[join(platformDir, 'gyre.wasi.cjs')], `the loader of ${platformPackage} is loaded`);
    assert.equal(cjs.backend(), 'wasm', 'backend()');
    assert.equal(cjs.simdLevel(), 'simd128', 'simdLevel()');
    log(`WebAssembly build loaded from ${platformPackage} (simd128, ${cjs.getNumThreads()} threads)`);
  } else {
    assert.deepEqual(addons, [join(platformDir, `gyre.${platform}.node`)], 'loaded native addons');
    assert.ok(!addons[0].startsWith(gyreDir + sep), 'addon loaded from outside the gyre package');
    assert.equal(cjs.backend(), 'native', 'backend()');
    log(`native addon loaded from ${platformPackage}`);
  }

  // A small LSTM regressor: predict the mean of a sequence of 12 numbers.
  // The installed package's own seeded generator, so the data and the losses are the same every run.
  const { sequential, loadModel, seededRandom } = esm;
  const rand = seededRandom(7);
  const x = [];
  const y = [];
  for (let i = 0; i < 256; i++) {
    const seq = Array.from({ length: 12 }, () => [rand() * 2 - 1]);
    x.push(seq);
    y.push([seq.reduce((s, [v]) => s + v, 0) / seq.length]);
  }
  const model = sequential({
    input: { features: 1 },
    layers: [
      { type: 'lstm', hiddenSize: 16, returnSequences: false },
      { type: 'dense', units: 1 },
    ],
    seed: 3,
  });
  let progressEvents = 0;
  const history = await model.fit(x, y, {
    loss: 'mse',
    epochs: 6,
    batchSize: 16,
    seed: 5,
    optimizer: { type: 'adam', learningRate: 0.01 },
    onProgress: () => {
      progressEvents++;
    },
  });
  const losses = history.epochs.map((e) => e.loss);
  log(`fit: ${losses.length} epochs, loss ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
  assert.equal(losses.length, 6, 'epochs trained');
  assert.ok(losses.every(Number.isFinite), 'losses are finite');
  assert.ok(losses.at(-1) < losses[0] * 0.5, `loss decreased by half (${losses[0]} -> ${losses.at(-1)})`);
  assert.ok(progressEvents > 6, 'onProgress was called');
  assert.equal(model.trainedEpochs, 6);

  // Held-out sequences: the trained model must beat predicting the mean by far.
  const probe = [];
  const truth = [];
  for (let i = 0; i < 64; i++) {
    const seq = Array.from({ length: 12 }, () => [rand() * 2 - 1]);
    probe.push(seq);
    truth.push(seq.reduce((s, [v]) => s + v, 0) / seq.length);
  }
  const before = await model.predict(probe);
  assert.deepEqual(before.shape, [64, 1], 'prediction shape');
  const average = truth.reduce((s, v) => s + v, 0) / truth.length;
  const variance = truth.reduce((s, v) => s + (v - average) ** 2, 0) / truth.length;
  const mse = truth.reduce((s, v, i) => s + (before.data[i] - v) ** 2, 0) / truth.length;
  assert.ok(mse < variance / 4, `held-out mse ${mse} against a variance of ${variance}`);
  log(`predict: shape [${before.shape}], held-out mse ${mse.toFixed(4)} (target variance ${variance.toFixed(4)})`);

  const dir = await mkdtemp(join(tmpdir(), 'gyre-smoke-'));
  try {
    const file = join(dir, 'model.safetensors');
    await model.save(file, { metadata: { smoke: true } });
    const loaded = await loadModel(file);
    assert.equal(loaded.trainedEpochs, 6, 'trainedEpochs after load');
    assert.deepEqual(loaded.metadata, { smoke: true }, 'metadata after load');
    const after = await loaded.predict(probe);
    assert.deepEqual(Array.from(after.data), Array.from(before.data), 'loaded model predicts the same');
    // Training resumes from the saved optimizer state.
    const more = await loaded.fit(x, y, { loss: 'mse', epochs: 1, batchSize: 16, seed: 5 });
    assert.ok(Number.isFinite(more.epochs[0].loss));
    assert.equal(loaded.trainedEpochs, 7);
    log('save -> loadModel: same predictions, metadata and epochs; fit resumes');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function checkUnavailable(err, how) {
  assert.ok(err instanceof Error, `${how} threw an Error`);
  assert.equal(err.code, 'GYRE_NATIVE_UNAVAILABLE', `${how}: error code (message: ${err.message})`);
  const pair = `${process.platform}-${process.arch}`;
  assert.ok(err.message.includes(pair), `${how}: message names the platform ${pair}: ${err.message}`);
  assert.match(err.message, /install/i, `${how}: message says what to install`);
  assert.match(err.message, /from source/, `${how}: message mentions building from source`);
  assert.doesNotMatch(err.message, /build:native/, `${how}: message does not suggest a script an npm install lacks`);
}

async function missing() {
  assert.throws(() => require.resolve(platformPackage), /Cannot find module/, `${platformPackage} is gone`);
  let thrown = null;
  try {
    require('gyre');
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown, `require('gyre') without ${platformPackage} must throw`);
  checkUnavailable(thrown, "require('gyre')");
  log(`require('gyre') throws ${thrown.name} (${thrown.code}): ${thrown.message}`);
  // The ESM entry goes through the same loader (evaluated again: a failed require is not cached).
  await assert.rejects(import('gyre'), (err) => {
    checkUnavailable(err, "import('gyre')");
    return true;
  });
  log("import('gyre') rejects the same way");
}

const mode = process.argv[2];
process.chdir(here);
if (mode === 'installed') await installed();
else if (mode === 'missing') await missing();
else throw new Error(`usage: node pack-smoke.mjs installed|missing (got ${mode})`);
