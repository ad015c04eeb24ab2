/** Helpers of tfjs.test.ts: tfjs artifacts as model.json + bytes, seeded data, a Keras GRU reference. */
import * as tf from '@tensorflow/tfjs';

/** A weights-manifest entry, as in model.json. */
export interface Spec {
  name: string;
  shape: number[];
  dtype: string;
  group?: string;
  quantization?: { dtype: string; scale?: number; min?: number };
}

/** model.json as tfjs writes it (one group, one shard) and the weight bytes. */
export interface Artifacts {
  modelJson: {
    format?: string;
    generatedBy?: string;
    convertedBy?: string | null;
    modelTopology: Record<string, unknown>;
    weightsManifest: { paths: string[]; weights: Spec[] }[];
  };
  weightData: Uint8Array;
}

/** What `model.save()` hands a save handler, as model.json + bytes. */
export async function artifactsOf(model: tf.LayersModel): Promise<Artifacts> {
  let out: Artifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData;
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data.slice(0)) : new Uint8Array(tf.io.concatenateArrayBuffers(data!));
      out = {
        modelJson: {
          format: a.format,
          generatedBy: a.generatedBy,
          convertedBy: a.convertedBy ?? null,
          modelTopology: JSON.parse(JSON.stringify(a.modelTopology)) as Record<string, unknown>,
          weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: JSON.parse(JSON.stringify(a.weightSpecs)) as Spec[] }],
        },
        weightData: bytes,
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return out!;
}

/** A small deterministic generator of floats in [-1, 1). */
export function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 0x100000000) * 2 - 1;
  };
}

/** Replaces every weight of a tfjs model by seeded values in [-scale, scale) (biases included). */
export function randomizeWeights(model: tf.LayersModel, seed: number, scale = 0.5): void {
  const r = seeded(seed);
  model.setWeights(
    model.getWeights().map((w) =>
      tf.tensor(
        Array.from({ length: w.size }, () => r() * scale),
        w.shape,
        'float32',
      ),
    ),
  );
}

/** `[samples][steps][features]` seeded floats. */
export function sequences(samples: number, steps: number, features: number, seed: number): number[][][] {
  const r = seeded(seed);
  return Array.from({ length: samples }, () => Array.from({ length: steps }, () => Array.from({ length: features }, () => r())));
}

/** tfjs' prediction for float sequences or token ids, as flat data and shape. */
export function tfPredict(model: tf.LayersModel, x: number[][][] | number[][]): { data: Float32Array; shape: number[] } {
  const input = Array.isArray(x[0]?.[0]) ? tf.tensor3d(x as number[][][]) : tf.tensor2d(x as number[][], undefined, 'int32');
  const y = model.predict(input) as tf.Tensor;
  const out = { data: y.dataSync() as Float32Array, shape: y.shape.slice() };
  input.dispose();
  y.dispose();
  return out;
}

/** The largest absolute difference between two arrays of the same length. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Float32 bytes of arrays, concatenated. */
export function float32Bytes(...arrays: ArrayLike<number>[]): Uint8Array {
  const all = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    all.set(a, at);
    at += a.length;
  }
  return new Uint8Array(all.buffer);
}

/** The float32 values of each manifest entry. */
export function splitWeights(a: Artifacts): Float32Array[] {
  const specs = a.modelJson.weightsManifest.flatMap((g) => g.weights);
  const out: Float32Array[] = [];
  let at = 0;
  for (const s of specs) {
    const n = s.shape.reduce((x, y) => x * y, 1);
    out.push(new Float32Array(a.weightData.slice(at, at + 4 * n).buffer));
    at += 4 * n;
  }
  return out;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * Keras' GRU (float64): kernel `[F, 3H]`, recurrent kernel `[H, 3H]` in Keras' z, r, h order;
 * bias `[2, 3H]` (reset_after) or `[3H]`. Returns `[S, T, H]` or `[S, H]` flat.
 */
export function kerasGru(
  x: number[][][],
  kernel: ArrayLike<number>,
  recurrent: ArrayLike<number>,
  bias: ArrayLike<number>,
  h: number,
  resetAfter: boolean,
  returnSequences: boolean,
): Float64Array {
  const f = x[0]![0]!.length;
  const g = 3 * h;
  const out: number[] = [];
  for (const seq of x) {
    let state = new Float64Array(h);
    for (const [t, step] of seq.entries()) {
      const xw = new Float64Array(g);
      const hw = new Float64Array(g);
      for (let c = 0; c < g; c++) {
        let s = bias[c]!;
        for (let i = 0; i < f; i++) s += step[i]! * kernel[i * g + c]!;
        xw[c] = s;
        let r = resetAfter ? bias[g + c]! : 0;
        for (let i = 0; i < h; i++) r += state[i]! * recurrent[i * g + c]!;
        hw[c] = r;
      }
      const next = new Float64Array(h);
      const z = Array.from({ length: h }, (_, j) => sigmoid(xw[j]! + hw[j]!));
      const r = Array.from({ length: h }, (_, j) => sigmoid(xw[h + j]! + hw[h + j]!));
      for (let j = 0; j < h; j++) {
        let cand: number;
        if (resetAfter) cand = Math.tanh(xw[2 * h + j]! + r[j]! * hw[2 * h + j]!);
        else {
          let s = 0;
          for (let i = 0; i < h; i++) s += r[i]! * state[i]! * recurrent[i * g + 2 * h + j]!;
          cand = Math.tanh(xw[2 * h + j]! + s);
        }
        next[j] = z[j]! * state[j]! + (1 - z[j]!) * cand;
      }
      state = next;
      if (returnSequences || t === seq.length - 1) out.push(...state);
    }
  }
  return Float64Array.from(out);
}
