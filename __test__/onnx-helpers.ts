/**
 * Helpers of __test__/onnx.test.ts: the export functions (from the build until src/index.ts
 * re-exports them), padded variable-length batches, and running an exported model in
 * onnxruntime-node next to gyre's predictSync.
 */
import * as ort from 'onnxruntime-node';
import type { Model } from 'gyre';
import { seeded } from './helpers';

export { ONNX_DEFAULT_OPSET, ONNX_MAX_OPSET, ONNX_MIN_OPSET, saveOnnx, toOnnx } from 'gyre';

/** One padded batch: `[S, T, I]` features (or `[S, T]` token ids) and each sequence's length. */
export interface Batch {
  samples: number;
  steps: number;
  lengths: number[];
  features?: { data: Float32Array; size: number };
  tokens?: Uint32Array;
}

/** Features in [-1, 1) at valid steps; large junk at padded steps (it must be ignored). */
export function featureBatch(lengths: number[], size: number, seed: number): Batch {
  const steps = Math.max(...lengths);
  const r = seeded(seed);
  const data = Float32Array.from(r(lengths.length * steps * size));
  lengths.forEach((len, s) => {
    for (let t = len; t < steps; t++) data.fill(7.5, (s * steps + t) * size, (s * steps + t + 1) * size);
  });
  return { samples: lengths.length, steps, lengths, features: { data, size } };
}

/** Token ids below `vocab` at valid steps; ids outside the vocabulary at padded steps. */
export function tokenBatch(lengths: number[], vocab: number, seed: number): Batch {
  const steps = Math.max(...lengths);
  const r = seeded(seed);
  const ids = Uint32Array.from(r(lengths.length * steps), (v) => Math.min(vocab - 1, Math.floor(((v + 1) / 2) * vocab)));
  lengths.forEach((len, s) => {
    ids.fill(vocab + 1000, s * steps + len, (s + 1) * steps);
  });
  return { samples: lengths.length, steps, lengths, tokens: ids };
}

/** gyre's output on the batch. */
export function gyreOutput(model: Model, b: Batch): { data: Float32Array; shape: number[] } {
  const lengths = b.lengths;
  return b.tokens
    ? model.predictSync({ data: b.tokens, shape: [b.samples, b.steps], lengths })
    : model.predictSync({ data: b.features!.data, shape: [b.samples, b.steps, b.features!.size], lengths });
}

/** The exported model's output on the batch (token ids go in as int64). */
export async function onnxOutput(session: ort.InferenceSession, b: Batch): Promise<{ data: Float32Array; shape: number[] }> {
  const input = b.tokens
    ? new ort.Tensor(
        'int64',
        BigInt64Array.from(b.tokens, (v) => BigInt(v)),
        [b.samples, b.steps],
      )
    : new ort.Tensor('float32', b.features!.data, [b.samples, b.steps, b.features!.size]);
  const out = await session.run({ input, sequence_lens: new ort.Tensor('int32', Int32Array.from(b.lengths), [b.samples]) });
  const y = out.output!;
  return { data: y.data as Float32Array, shape: y.dims.map(Number) };
}

/** Largest absolute difference of two equally long arrays. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(d) ? Infinity : d;
}

/** Values of a `[S, T, U]` output at steps ≥ each sequence's length. */
export function paddedValues(y: { data: Float32Array; shape: number[] }, lengths: number[]): number[] {
  const [, steps, units] = y.shape as [number, number, number];
  const out: number[] = [];
  lengths.forEach((len, s) => {
    out.push(...y.data.subarray((s * steps + len) * units, (s + 1) * steps * units));
  });
  return out;
}
