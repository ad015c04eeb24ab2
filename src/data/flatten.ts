/**
 * Turning the ways people hold sequences in JavaScript into the flat arrays the native model
 * reads: nested arrays (ragged allowed: lengths follow from them) or flat typed arrays with a
 * shape.
 */
import { InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import { firstNonFinite } from '../native.js';
import { describe, finite } from '../util/check.js';

/** A batch of sequences as one flat, row-major typed array with its shape. */
export interface SequenceTensor {
  /** `[samples, steps, features]` floats, or `[samples, steps]` token ids. */
  data: Float32Array | Float64Array | Uint32Array | Int32Array;
  /** `[samples, steps, features]` or `[samples, steps]` for token ids. */
  shape: readonly number[];
  /** `[samples]` each sequence's length (1..steps); default: all `steps`. */
  lengths?: ArrayLike<number>;
}

/**
 * Model input: nested arrays `number[][][]` (`[sample][step][feature]`) or `number[][]`
 * (`[sample][step]` token ids), ragged by sequence; or a {@link SequenceTensor}.
 */
export type SequenceInput = number[][][] | number[][] | SequenceTensor;

/** Targets: class ids (`number[]` per sequence, `number[][]` per step) or float values. */
export type TargetInput =
  | ArrayLike<number>
  | number[][]
  | number[][][]
  | { data: Float32Array | Float64Array | Uint32Array | Int32Array; shape: readonly number[] };

/** Flat input as the native model reads it. */
export interface FlatSequences {
  samples: number;
  steps: number;
  features?: Float32Array;
  tokens?: Uint32Array;
  lengths?: Uint32Array;
}

/**
 * Each sequence's length read from a padding mask (`mask`: the token id, or the value every
 * feature of a padding step equals): its steps up to its last step that is not padding.
 * @throws {InvalidArgumentError} for a sequence that is all padding, or that has padding before
 *   a later real step (a mask is read as lengths: padding must come last).
 */
export function lengthsFromMask(x: FlatSequences, mask: number, what = 'x'): Uint32Array {
  const { samples, steps } = x;
  const width = x.tokens ? 1 : (x.features?.length ?? 0) / Math.max(1, samples * steps);
  const values: ArrayLike<number> = x.tokens ?? x.features ?? [];
  // Features are float32: compared with the mask value as float32, as Keras compares them.
  mask = x.tokens ? mask : Math.fround(mask);
  const padding = (s: number, t: number): boolean => {
    const o = (s * steps + t) * width;
    for (let f = 0; f < width; f++) if (values[o + f] !== mask) return false;
    return true;
  };
  const name = x.tokens ? `token ${mask}` : `steps whose features all equal maskValue ${mask}`;
  const lengths = new Uint32Array(samples);
  for (let s = 0; s < samples; s++) {
    let last = steps - 1;
    while (last >= 0 && padding(s, last)) last--;
    if (last < 0) throw new InvalidArgumentError(`${what}: sequence ${s} is all padding (${name}); every sequence needs a real step`);
    for (let t = 0; t < last; t++) {
      if (padding(s, t)) {
        throw new InvalidArgumentError(
          `${what}: sequence ${s} has padding (${name}) at step ${t} before a real step at ${last}; the model reads its mask as ` +
            `each sequence's length, so padding must come last (pad at the end, e.g. Keras pad_sequences(padding='post')), or give lengths`,
        );
      }
    }
    lengths[s] = last + 1;
  }
  return lengths;
}

function tokenId(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xfffffffe) {
    throw new InvalidArgumentError(`${what} must be a non-negative integer token id, got ${describe(v)}`);
  }
  return v;
}

/**
 * Flattens model input. `tokens` says whether the model reads token ids (it starts with an
 * embedding) or float features (`features` per step).
 */
export function flattenInput(x: unknown, tokens: boolean, features: number, what = 'x'): FlatSequences {
  if (x === undefined || x === null) throw new MissingArgumentError(`${what} is required`);
  if (Array.isArray(x)) return flattenNested(x, tokens, features, what);
  if (typeof x === 'object' && 'data' in x && 'shape' in x) return flattenTensor(x as SequenceTensor, tokens, features, what);
  throw new InvalidArgumentError(
    `${what} must be nested arrays ([sample][step]${tokens ? '' : '[feature]'}) or { data, shape }, got ${describe(x)}`,
  );
}

function flattenNested(x: unknown[], tokens: boolean, features: number, what: string): FlatSequences {
  const samples = x.length;
  if (samples === 0) throw new InvalidArgumentError(`${what} must hold at least one sequence, got an empty array`);
  const lengths = new Uint32Array(samples);
  x.forEach((seq, s) => {
    if (!Array.isArray(seq)) throw new InvalidArgumentError(`${what}[${s}] must be an array of steps, got ${describe(seq)}`);
    if (seq.length === 0) throw new InvalidArgumentError(`${what}[${s}] must have at least one step, got an empty sequence`);
    lengths[s] = seq.length;
  });
  const steps = Math.max(...lengths);
  const ragged = lengths.some((l) => l !== steps);
  if (tokens) {
    const out = new Uint32Array(samples * steps);
    (x as unknown[][]).forEach((seq, s) => {
      seq.forEach((v, t) => {
        out[s * steps + t] = tokenId(`${what}[${s}][${t}]`, v);
      });
    });
    return { samples, steps, tokens: out, lengths: ragged ? lengths : undefined };
  }
  const out = new Float32Array(samples * steps * features);
  (x as unknown[][]).forEach((seq, s) => {
    seq.forEach((step, t) => {
      const row = typeof step === 'number' && features === 1 ? [step] : step;
      if (!Array.isArray(row)) {
        throw new InvalidArgumentError(`${what}[${s}][${t}] must be an array of ${features} features, got ${describe(step)}`);
      }
      if (row.length !== features) {
        throw new ShapeMismatchError(`${what}[${s}][${t}] must have ${features} features, got ${row.length}`);
      }
      row.forEach((v, f) => {
        out[(s * steps + t) * features + f] = finite(`${what}[${s}][${t}][${f}]`, v);
      });
    });
  });
  return { samples, steps, features: out, lengths: ragged ? lengths : undefined };
}

function flattenTensor(x: SequenceTensor, tokens: boolean, features: number, what: string): FlatSequences {
  const shape = Array.from(x.shape ?? []);
  const want = tokens ? 2 : 3;
  if (shape.length !== want || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new ShapeMismatchError(
      `${what}.shape must be ${tokens ? '[samples, steps]' : `[samples, steps, ${features}]`} of positive integers, got [${shape.join(', ')}]`,
    );
  }
  const [samples, steps] = shape as [number, number];
  if (!tokens && shape[2] !== features) {
    throw new ShapeMismatchError(`${what}.shape[2] must be the model's ${features} input features, got ${shape[2]}`);
  }
  const total = shape.reduce((a, b) => a * b, 1);
  if (!ArrayBuffer.isView(x.data) || x.data.length !== total) {
    throw new ShapeMismatchError(
      `${what}.data must hold ${total} values for shape [${shape.join(', ')}], got ${ArrayBuffer.isView(x.data) ? x.data.length : describe(x.data)}`,
    );
  }
  let lengths: Uint32Array | undefined;
  if (x.lengths !== undefined) {
    if (x.lengths.length !== samples) {
      throw new ShapeMismatchError(`${what}.lengths must have ${samples} entries, got ${x.lengths.length}`);
    }
    lengths = new Uint32Array(samples);
    for (let s = 0; s < samples; s++) {
      const l = x.lengths[s];
      if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > steps) {
        throw new InvalidArgumentError(`${what}.lengths[${s}] must be an integer in 1..${steps}, got ${describe(l)}`);
      }
      lengths[s] = l;
    }
  }
  if (tokens) {
    if (!(x.data instanceof Uint32Array || x.data instanceof Int32Array)) {
      throw new InvalidArgumentError(`${what}.data must be a Uint32Array or Int32Array of token ids, got ${describe(x.data)}`);
    }
    const ids = x.data instanceof Uint32Array ? x.data : Uint32Array.from(x.data, (v, i) => tokenId(`${what}.data[${i}]`, v));
    return { samples, steps, tokens: ids, lengths };
  }
  if (!(x.data instanceof Float32Array || x.data instanceof Float64Array)) {
    throw new InvalidArgumentError(`${what}.data must be a Float32Array or Float64Array, got ${describe(x.data)}`);
  }
  // As for nested arrays: every value the model reads must be finite (padded steps are not
  // read). Checked natively at memory speed (a JavaScript loop was a tenth of a large predict).
  const per = steps * features;
  const counts = lengths ? lengths.map((l) => l * features) : undefined;
  const feats = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
  const bad = firstNonFinite(feats, per, counts);
  if (bad >= 0) throw new InvalidArgumentError(`${what}.data[${bad}] must be a finite number (as float32), got ${x.data[bad]}`);
  return { samples, steps, features: feats, lengths };
}

function floatArray(a: unknown): a is Float32Array | Float64Array {
  return a instanceof Float32Array || a instanceof Float64Array;
}

/**
 * Float targets as float32, checked natively (one JavaScript test per value was slow): a
 * Float32Array is used as it is (the native call copies what it keeps), a Float64Array is
 * converted into `out`.
 */
function checkedFloats(data: Float32Array | Float64Array, out: Float32Array, what: string): Float32Array {
  if (data instanceof Float32Array) out = data;
  else out.set(data);
  const bad = firstNonFinite(out, out.length, undefined);
  if (bad >= 0)
    throw new InvalidArgumentError(
      `${what}[${bad}] must be a finite number${data instanceof Float64Array ? ' (as float32)' : ''}, got ${data[bad]}`,
    );
  return out;
}

/** Flattens targets: `classes` (integer ids) or `width` float values per row. */
export function flattenTargets(
  y: unknown,
  classes: boolean,
  width: number,
  samples: number,
  steps: number,
  perStep: boolean,
  what = 'y',
): { classes?: Uint32Array; values?: Float32Array } {
  if (y === undefined || y === null) throw new MissingArgumentError(`${what} is required`);
  const rows = perStep ? samples * steps : samples;
  const per = classes ? 1 : width;
  const out = classes ? new Uint32Array(rows * per) : new Float32Array(rows * per);
  // `where` is a string or, on the per-element hot paths, a function making it (only on error).
  const put = (row: number, col: number, v: unknown, where: string | (() => string)) => {
    const at = () => (typeof where === 'string' ? where : where());
    if (classes) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw new InvalidArgumentError(`${at()} must be a non-negative integer class id, got ${describe(v)}`);
      }
      out[row] = v;
    } else {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new InvalidArgumentError(`${at()} must be a finite number, got ${describe(v)}`);
      out[row * per + col] = v;
    }
  };
  if (typeof y === 'object' && y !== null && 'data' in y && 'shape' in y && !ArrayBuffer.isView(y)) {
    const t = y as { data: ArrayLike<number>; shape: readonly number[] };
    const total = Array.from(t.shape).reduce((a, b) => a * b, 1);
    if (total !== rows * per || t.data.length !== total) {
      throw new ShapeMismatchError(
        `${what} must hold ${rows * per} values (${describeTargetShape(classes, samples, steps, perStep, width)}), got ${t.data.length}`,
      );
    }
    if (!classes && floatArray(t.data)) return { values: checkedFloats(t.data, out as Float32Array, `${what}.data`) };
    for (let i = 0; i < total; i++) put(Math.floor(i / per), i % per, t.data[i], () => `${what}.data[${i}]`);
    return classes ? { classes: out as Uint32Array } : { values: out as Float32Array };
  }
  if (ArrayBuffer.isView(y) || (Array.isArray(y) && (y.length === 0 || typeof y[0] === 'number'))) {
    const flat = y as ArrayLike<number>;
    if (flat.length !== rows * per) {
      throw new ShapeMismatchError(
        `${what} must hold ${rows * per} values (${describeTargetShape(classes, samples, steps, perStep, width)}), got ${flat.length}`,
      );
    }
    if (!classes && floatArray(flat)) return { values: checkedFloats(flat, out as Float32Array, what) };
    for (let i = 0; i < flat.length; i++) put(Math.floor(i / per), i % per, flat[i], () => `${what}[${i}]`);
    return classes ? { classes: out as Uint32Array } : { values: out as Float32Array };
  }
  if (!Array.isArray(y)) throw new InvalidArgumentError(`${what} must be an array or typed array, got ${describe(y)}`);
  if (y.length !== samples) throw new ShapeMismatchError(`${what} must have one entry per sequence (${samples}), got ${y.length}`);
  y.forEach((entry, s) => {
    if (perStep) {
      if (!Array.isArray(entry))
        throw new InvalidArgumentError(`${what}[${s}] must be an array of per-step targets, got ${describe(entry)}`);
      if (entry.length > steps) throw new ShapeMismatchError(`${what}[${s}] has ${entry.length} steps, more than the input's ${steps}`);
      entry.forEach((v, t) => {
        if (classes) put(s * steps + t, 0, v, `${what}[${s}][${t}]`);
        else {
          const row = typeof v === 'number' && width === 1 ? [v] : v;
          if (!Array.isArray(row) || row.length !== width) {
            throw new ShapeMismatchError(`${what}[${s}][${t}] must have ${width} values, got ${describe(v)}`);
          }
          row.forEach((x, c) => {
            put(s * steps + t, c, x, `${what}[${s}][${t}][${c}]`);
          });
        }
      });
    } else if (classes) {
      put(s, 0, entry, `${what}[${s}]`);
    } else {
      const row = typeof entry === 'number' && width === 1 ? [entry] : entry;
      if (!Array.isArray(row) || row.length !== width) {
        throw new ShapeMismatchError(`${what}[${s}] must have ${width} values, got ${describe(entry)}`);
      }
      row.forEach((x, c) => {
        put(s, c, x, `${what}[${s}][${c}]`);
      });
    }
  });
  return classes ? { classes: out as Uint32Array } : { values: out as Float32Array };
}

function describeTargetShape(classes: boolean, samples: number, steps: number, perStep: boolean, width: number): string {
  const dims = perStep ? [samples, steps] : [samples];
  if (!classes) dims.push(width);
  return `[${dims.join(', ')}]${classes ? ' class ids' : ''}`;
}

/** Samples `from..to` of flat sequences (views, no copies). */
export function sliceSequences(x: FlatSequences, from: number, to: number): FlatSequences {
  const per = x.steps * (x.features ? x.features.length / (x.samples * x.steps) : 1);
  return {
    samples: to - from,
    steps: x.steps,
    features: x.features?.subarray(from * per, to * per),
    tokens: x.tokens?.subarray(from * x.steps, to * x.steps),
    lengths: x.lengths?.subarray(from, to),
  };
}

/** Rows `from..to` of flat targets (views). */
export function sliceTargets(
  y: { classes?: Uint32Array; values?: Float32Array },
  samples: number,
  from: number,
  to: number,
): { classes?: Uint32Array; values?: Float32Array } {
  const arr = y.classes ?? y.values;
  const per = arr ? arr.length / samples : 0;
  return {
    classes: y.classes?.subarray(from * per, to * per),
    values: y.values?.subarray(from * per, to * per),
  };
}
