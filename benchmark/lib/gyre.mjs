// gyre: inference (model.predict) and training (model.fit) at each thread count, plus gyre's
// own 1024³ sgemm (through lstmForward), streaming step latency and the peak memory of lstm-l
// training. Every process reports the SIMD level it ran at (GYRE_SIMD caps it).
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import gyre from '../../dist/index.js';
import { ATTENTION, WORKLOADS, attentionData, gates, makeData, parameterCount, rng } from './workloads.mjs';
import { measure, median } from './timing.mjs';

/** The benchmarked model: one recurrent layer and a dense readout at every step. */
export function buildModel(w, seed = 1) {
  return gyre.sequential({
    input: { features: w.input },
    layers: [
      { type: w.cell, hiddenSize: w.hidden },
      { type: 'dense', units: w.output, activation: w.loss === 'crossEntropy' ? 'softmax' : 'linear' },
    ],
    seed,
  });
}

function fitOptions(w) {
  return { loss: w.loss, epochs: 1, batchSize: w.batch, shuffle: false, optimizer: { type: 'adam', learningRate: 0.001 } };
}

/**
 * One repetition = one call over `batches[w]` batches: `predict(x, { batchSize })` (gyre
 * batches natively inside the call) or `fit(x, y, { epochs: 1, batchSize, shuffle: false })`.
 */
export async function bench(w, s) {
  const batches = s.batches[w.name];
  const sequences = batches * w.batch;
  const data = makeData(w, sequences, 1);
  const x = { data: data.x, shape: [sequences, w.steps, w.input] };
  const y = w.oneHot ? data.classes : data.values;
  const model = buildModel(w);
  const rows = [];
  const opts = { seqsPerRep: sequences, warmup: 1, reps: s.reps, minReps: s.minReps, budgetMs: s.fastBudgetMs, minTotalMs: s.minTotalMs };
  const simd = gyre.simdLevel();
  for (const threads of s.threads) {
    gyre.setNumThreads(threads);
    const note = `${batches} batch(es) of ${w.batch} per call`;
    const inf = await measure(() => model.predict(x, { batchSize: w.batch }), opts);
    rows.push({ mode: 'inference', threads, simd, ...inf, note: `predict, ${note}` });
    const tr = await measure(() => model.fit(x, y, fitOptions(w)), opts);
    rows.push({ mode: 'training', threads, simd, ...tr, note: `fit, Adam, ${note}` });
  }
  model.dispose();
  return rows;
}

function uniform(r, n, scale) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/**
 * gyre's SIMD level and thread count in this process (its environment: GYRE_SIMD, GYRE_NUM_THREADS),
 * and the native addon its loader chose (the `.node` file it loaded; null for the WebAssembly build).
 */
export function info() {
  const addon = Object.keys(createRequire(import.meta.url).cache).find((f) => f.endsWith('.node')) ?? null;
  return { simdLevel: gyre.simdLevel(), threads: gyre.getNumThreads(), addon };
}

/**
 * gyre's own matrix product at 1024×1024×1024 (its SIMD kernel for f32, at the level in use;
 * benchmark/gemm.md compares it), measured through the public API: `lstmForward` with batch
 * 1024, 1 step, input 1024 and hidden 256 computes its input projection as one
 * [1024×1024]×[1024×(4·256)] product (packing of the 4 MiB weight included), then one step (a
 * [1024×256]×[256×1024] recurrent product and the gates). The same call with input size 1 does
 * everything but the big product, so the product's time is the difference of the two; the
 * calls alternate and the median difference is used. GFLOP/s = 2·1024³ FLOPs / that time.
 * The suite compares it with the roofs that are not gyre's (an external sgemm and the core's
 * multiply-add peak, run.mjs).
 */
export function product1024(s) {
  const N = 1024;
  const H = 256;
  const r = rng(7);
  const weights = (inputSize) => ({
    weight_ih_l0: uniform(r, 4 * H * inputSize, 0.05),
    weight_hh_l0: uniform(r, 4 * H * H, 0.05),
    bias_ih_l0: uniform(r, 4 * H, 0.05),
    bias_hh_l0: uniform(r, 4 * H, 0.05),
  });
  const full = { input: uniform(r, N * N, 1), batch: N, steps: 1, inputSize: N, hiddenSize: H, weights: weights(N) };
  const base = { input: uniform(r, N, 1), batch: N, steps: 1, inputSize: 1, hiddenSize: H, weights: weights(1) };
  const time = (args) => {
    const t0 = performance.now();
    gyre.lstmForward(args);
    return performance.now() - t0;
  };
  const out = [];
  for (const threads of s.threads) {
    gyre.setNumThreads(threads);
    time(full);
    time(base);
    const fullMs = [];
    const baseMs = [];
    const diffMs = [];
    for (let i = 0; i < s.productPairs; i++) {
      const a = time(full);
      const b = time(base);
      fullMs.push(a);
      baseMs.push(b);
      diffMs.push(a - b);
    }
    const productMs = median(diffMs);
    out.push({
      threads,
      simd: gyre.simdLevel(),
      gflops: (2 * N ** 3) / (productMs / 1000) / 1e9,
      productMs,
      fullCallMs: median(fullMs),
      baseCallMs: median(baseMs),
      pairs: s.productPairs,
      // The whole call's rate if all its time were the product: a lower bound of the product's.
      wholeCallGflops: (2 * N ** 3) / (median(fullMs) / 1000) / 1e9,
    });
  }
  return out;
}

/**
 * Streaming latency: an LSTM (input 32, hidden 128) with a dense readout of 32, one stream of
 * batch 1, `stream.step(Float32Array(32))` timed one call at a time with hrtime (so the JS ↔
 * native crossing and the input check are included), after 1,000 warm-up steps.
 */
export function streamLatency(s) {
  const model = gyre.sequential({
    input: { features: 32 },
    layers: [
      { type: 'lstm', hiddenSize: 128 },
      { type: 'dense', units: 32 },
    ],
    seed: 1,
  });
  const r = rng(11);
  const inputs = Array.from({ length: 64 }, () => uniform(r, 32, 1));
  const out = [];
  for (const threads of s.threads) {
    gyre.setNumThreads(threads);
    const stream = model.createStream();
    for (let i = 0; i < 1000; i++) stream.step(inputs[i & 63]);
    const us = new Float64Array(s.streamSteps);
    for (let i = 0; i < us.length; i++) {
      const t0 = process.hrtime.bigint();
      stream.step(inputs[i & 63]);
      us[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    const sorted = Float64Array.from(us).sort();
    out.push({
      threads,
      steps: us.length,
      medianUs: sorted[sorted.length >> 1],
      p99Us: sorted[Math.floor(sorted.length * 0.99)],
      meanUs: us.reduce((a, b) => a + b, 0) / us.length,
    });
  }
  model.dispose();
  return out;
}

/**
 * Peak resident memory of lstm-l training, in a process that does nothing else: RSS sampled
 * every 2 ms during one `fit` over `memoryBatches` batches (a number), and the kernel's maxRSS,
 * against the arithmetic of what training must hold. Returns a one-element array (the suite
 * runs one process per batch count).
 */
export async function memoryPeak(s) {
  const w = WORKLOADS['lstm-l'];
  const sequences = s.memoryBatches * w.batch;
  const data = makeData(w, sequences, 3);
  const model = buildModel(w);
  const threads = Math.max(...s.threads);
  gyre.setNumThreads(threads);
  globalThis.gc?.();
  const baselineRss = process.memoryUsage().rss;
  let sampledPeak = baselineRss;
  let samples = 0;
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss;
    samples++;
    if (rss > sampledPeak) sampledPeak = rss;
  }, 2);
  const t0 = performance.now();
  await model.fit({ data: data.x, shape: [sequences, w.steps, w.input] }, data.values, fitOptions(w));
  const fitMs = performance.now() - t0;
  clearInterval(timer);
  const maxRss = process.resourceUsage().maxRSS * 1024; // kilobytes on every platform Node supports
  const P = parameterCount(w);
  const G = gates(w.cell);
  const { batch: B, steps: T, input: I, hidden: H, output: O } = w;
  const optimizerBytes = 4 * P * 4;
  const activationBytes = B * T * (I + G * H + 2 * H + 2 * O) * 4;
  const dataCopyBytes = sequences * T * (I + O) * 4;
  const result = {
    workload: w.name,
    threads,
    batches: s.memoryBatches,
    sequences,
    fitMs,
    samples,
    parameters: P,
    modelParameterCount: model.parameterCount,
    nativeBytesAfterFit: model.nativeBytes,
    baselineRss,
    sampledPeakRss: sampledPeak,
    maxRss,
    peakRss: Math.max(sampledPeak, maxRss),
    measuredDelta: Math.max(sampledPeak, maxRss) - baselineRss,
    estimate: {
      optimizerBytes,
      activationBytes,
      requiredBytes: optimizerBytes + activationBytes,
      dataCopyBytes,
      totalBytes: optimizerBytes + activationBytes + dataCopyBytes,
      formula:
        'required = 4·P·4 B (weights, gradients, Adam m and v; P parameters) + B·T·(I + G·H + 2·H + 2·O)·4 B ' +
        "(what backpropagation through time reads, per step per sequence: the input I for the input weights' gradient, " +
        "the gate activations G·H, the states h and c 2·H — the state a step started from is the previous step's —, " +
        "the readout's output O and the loss gradient O); the copy of the training set fit makes: S·T·(I + O)·4 B " +
        '(inputs and targets copied once to native memory, which training reads off the event loop; S sequences per fit; ' +
        'Float32Array targets are not copied in JS)',
    },
  };
  model.dispose();
  return [result];
}

/**
 * The encoder–decoder (`Seq2Seq`) on a grapheme-to-phoneme-shaped task: 2,048 pairs of 4–10
 * source letters (26) and their targets (each letter mapped to one of 39 symbols, in reverse
 * order), a bidirectional LSTM encoder of hidden 128 and an LSTM decoder of 256 with general
 * attention and input feeding, batches of 64. Per thread count: training pairs/s (the median of
 * `s.seq2seqEpochs` one-epoch runs after one warm-up epoch) and decoding pairs/s, greedy and with
 * a beam of 5 (all sources in one `transduce` call, median of 3). TensorFlow.js cannot express it
 * (it has no attention layer, no input feeding and no beam search): `attentionGraphBench` is the
 * model both can.
 */
export async function seq2seqBench(s) {
  const r = rng(17);
  const symbols = Array.from({ length: 39 }, (_, i) => `P${i}`);
  const pairs = Array.from({ length: 2048 }, () => {
    const letters = Array.from({ length: 4 + Math.floor(((r() + 1) / 2) * 7) }, () => Math.floor(((r() + 1) / 2) * 26) % 26);
    return [
      String.fromCharCode(...letters.map((l) => 97 + l)),
      letters
        .map((l) => symbols[(l * 7) % 39])
        .reverse()
        .join(' '),
    ];
  });
  const options = { targetTokenizer: 'word', hiddenSize: 128, batchSize: 64, validation: 0, seed: 1 };
  const out = [];
  for (const threads of s.threads) {
    gyre.setNumThreads(threads);
    await gyre.Seq2Seq.train(pairs, { ...options, epochs: 1 });
    const trainMs = [];
    let model;
    for (let k = 0; k < s.seq2seqEpochs; k++) {
      const t0 = performance.now();
      model = await gyre.Seq2Seq.train(pairs, { ...options, epochs: 1 });
      trainMs.push(performance.now() - t0);
    }
    const sources = pairs.map((p) => p[0]);
    const decode = async (beamWidth) => {
      const ms = [];
      for (let k = 0; k < 3; k++) {
        const t0 = performance.now();
        await model.transduce(sources, { beamWidth, maxLength: 16 });
        ms.push(performance.now() - t0);
      }
      return pairs.length / (median(ms) / 1000);
    };
    out.push({
      threads,
      pairs: pairs.length,
      trainingPairsPerSec: pairs.length / (median(trainMs) / 1000),
      greedyPairsPerSec: await decode(1),
      beam5PairsPerSec: await decode(5),
    });
  }
  return out;
}

/** Rows of `width` from a flat Int32Array, as nested arrays. */
function rowsOf(flat, width) {
  return Array.from({ length: flat.length / width }, (_, i) => Array.from(flat.subarray(i * width, (i + 1) * width)));
}

/**
 * The encoder–decoder TensorFlow.js can express too (`ATTENTION` in workloads.mjs) as a gyre
 * model graph: training pairs/s, the median of `s.seq2seqEpochs` one-epoch `fit` runs over
 * `s.attentionPairs` pairs (Adam 0.001, batch 64, no shuffling) after a warm-up epoch, one
 * thread count per process.
 */
export async function attentionGraphBench(s) {
  const a = ATTENTION;
  const d = attentionData(s.attentionPairs);
  const g = gyre.graph();
  const src = g.input('source', { vocabSize: a.letters });
  const tgt = g.input('target', { vocabSize: a.symbols + 2 });
  const enc = g.lstm(g.embedding(src, { embeddingDim: a.embedding }), {
    hiddenSize: a.encoder,
    bidirectional: true,
    returnState: true,
    name: 'enc',
  });
  const dec = g.lstm(g.embedding(tgt, { embeddingDim: a.embedding }), { hiddenSize: a.decoder, initialState: enc.state, name: 'dec' });
  const ctx = g.attention(dec, enc, { score: 'dot', name: 'ctx' });
  const out = g.dense(g.concatenate([dec, ctx]), { units: a.symbols + 1, activation: 'softmax', name: 'out' });
  const model = g.model([out], { seed: 1 });
  const x = { source: rowsOf(d.source, a.sourceSteps), target: rowsOf(d.decoderIn, a.targetSteps) };
  const y = { out: rowsOf(d.target, a.targetSteps) };
  const parameters = Object.values(model.parameters()).reduce((n, p) => n + p.data.length, 0);
  const result = [];
  for (const threads of s.threads) {
    gyre.setNumThreads(threads);
    const oneEpoch = () => model.fit(x, y, { epochs: 1, batchSize: a.batch, learningRate: 0.001, shuffle: false });
    const timedEpochs = await measure(oneEpoch, { seqsPerRep: s.attentionPairs, reps: s.seq2seqEpochs });
    result.push({
      library: 'gyre',
      threads,
      pairs: s.attentionPairs,
      parameters,
      trainingPairsPerSec: timedEpochs.seqPerSec,
    });
  }
  model.dispose();
  return result;
}
