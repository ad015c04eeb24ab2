// onnxruntime-node (CPU), inference only: the ONNX model is gyre's own `toOnnx` export of a
// gyre model with the workload's shapes (one ONNX LSTM or GRU node, then MatMul + Add for the
// readout, Softmax for lstm-s, and the sequence-length mask), so both run the same weights.
import * as ort from 'onnxruntime-node';
import gyre from '../../dist/index.js';
import { buildModel } from './gyre.mjs';
import { makeData } from './workloads.mjs';
import { measure } from './timing.mjs';

/**
 * One repetition = `batches[w]` calls of `session.run` with one batch of `w.batch` sequences
 * each (`input` [B, T, I] float32, `sequence_lens` [B] int32 all T). One session per thread
 * count: intraOpNumThreads = threads, interOpNumThreads 1, sequential execution.
 */
export async function bench(w, s) {
  const batches = s.batches[w.name];
  const sequences = batches * w.batch;
  const data = makeData(w, sequences, 1);
  const model = buildModel(w);
  const bytes = gyre.toOnnx(model);
  const per = w.batch * w.steps * w.input;
  const feeds = Array.from({ length: batches }, (_, b) => ({
    input: new ort.Tensor('float32', data.x.subarray(b * per, (b + 1) * per), [w.batch, w.steps, w.input]),
    sequence_lens: new ort.Tensor('int32', new Int32Array(w.batch).fill(w.steps), [w.batch]),
  }));
  const rows = [];
  for (const threads of s.threads) {
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    // The export must agree with gyre on the first batch (it is the same model).
    const first = (await session.run(feeds[0])).output.data;
    const ref = model.predictSync({ data: data.x.subarray(0, per), shape: [w.batch, w.steps, w.input] }).data;
    let maxAbsDiff = 0;
    for (let i = 0; i < ref.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref[i] - first[i]));
    const r = await measure(
      async () => {
        for (const f of feeds) await session.run(f);
      },
      { seqsPerRep: sequences, warmup: 1, reps: s.reps, minReps: s.minReps, budgetMs: s.fastBudgetMs, minTotalMs: s.minTotalMs },
    );
    rows.push({
      mode: 'inference',
      threads,
      ...r,
      maxAbsDiffVsGyre: maxAbsDiff,
      note: `session.run per batch, ${batches} batch(es) of ${w.batch}; max |Δ| vs gyre ${maxAbsDiff.toExponential(1)}`,
    });
    await session.release();
  }
  model.dispose();
  return rows;
}
