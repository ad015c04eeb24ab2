/**
 * Feeding data: tensors from nested arrays or typed arrays with a shape, and datasets from
 * arrays or async iterables (a file, a database cursor) with seeded shuffling, batching,
 * padding with lengths, bucketing by length and a train/validation split. A dataset is lazy:
 * it reads its source as it is iterated and holds only what its shuffle buffer and the current
 * batch need.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
import { InvalidArgumentError, MissingArgumentError, ShapeMismatchError } from '../errors.js';
import { readingFile } from '../util/files.js';
import { randomStream, hashUnit } from '../util/random.js';
import { describe, finite, nonEmptyString, nonNegativeInt, numberIn, oneOf, positiveInt } from '../util/check.js';

/** A dense tensor: flat row-major data and its shape. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/**
 * A tensor from nested arrays (any depth, rectangular) or from a typed array with its shape.
 * `tensor([[1, 2], [3, 4]])` → shape `[2, 2]`; `tensor(new Float32Array(6), [2, 3])`.
 * @throws {ShapeMismatchError} naming the index and the dimension that disagrees
 *   (`x[3][5] has 2 entries along dimension 2, expected 3`): ragged sequences need
 *   {@link padSequences}, which records each one's length.
 * @throws {InvalidArgumentError} for a non-finite or non-numeric value, naming its index.
 */
export function tensor(values: unknown, shape?: readonly number[], what = 'x'): Tensor {
  if (values === undefined || values === null) throw new MissingArgumentError(`${what} is required`);
  if (ArrayBuffer.isView(values)) {
    if (shape === undefined)
      throw new MissingArgumentError(`${what}: a typed array needs its shape, e.g. tensor(data, [samples, steps, features])`);
    const dims = Array.from(shape);
    dims.forEach((d, i) => {
      positiveInt(`${what} shape[${i}]`, d);
    });
    const n = dims.reduce((a, b) => a * b, 1);
    const arr = values as unknown as ArrayLike<number>;
    if (arr.length !== n) {
      throw new ShapeMismatchError(`${what} holds ${arr.length} values but shape [${dims.join(', ')}] needs ${n}`);
    }
    const data = values instanceof Float32Array ? values : new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const v = arr[i]!;
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`${what}.data[${i}] must be a finite number, got ${v}`);
      if (data !== values) data[i] = v;
    }
    return { data, shape: dims };
  }
  if (!Array.isArray(values))
    throw new InvalidArgumentError(`${what} must be nested arrays or a typed array with a shape, got ${describe(values)}`);
  // The shape follows the first entry at every depth; every other entry must agree.
  const dims: number[] = [];
  for (let v: unknown = values; Array.isArray(v); v = v[0]) {
    if (v.length === 0) throw new ShapeMismatchError(`${what}${'[0]'.repeat(dims.length)} is empty along dimension ${dims.length}`);
    dims.push(v.length);
  }
  if (shape !== undefined && (shape.length !== dims.length || shape.some((d, i) => d !== dims[i]))) {
    throw new ShapeMismatchError(`${what} has shape [${dims.join(', ')}], expected [${Array.from(shape).join(', ')}]`);
  }
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let k = 0;
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === dims.length) {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new InvalidArgumentError(`${path} must be a finite number, got ${describe(v)}`);
      }
      data[k++] = v;
      return;
    }
    if (!Array.isArray(v)) {
      throw new ShapeMismatchError(`${path} must be an array along dimension ${depth} (${dims[depth]} entries), got ${describe(v)}`);
    }
    if (v.length !== dims[depth]) {
      const hint = depth === 1 ? '; ragged sequences need padSequences(), which records their lengths' : '';
      throw new ShapeMismatchError(`${path} has ${v.length} entries along dimension ${depth}, expected ${dims[depth]}${hint}`);
    }
    v.forEach((e, i) => {
      walk(e, depth + 1, `${path}[${i}]`);
    });
  };
  walk(values, 0, what);
  return { data, shape: dims };
}

/** Padded sequences with each one's length, as the model reads them. */
export interface PaddedSequences {
  /** `[samples, steps, features]` floats or `[samples, steps]` token ids (`Uint32Array`); padding is `value`. */
  data: Float32Array | Uint32Array;
  shape: number[];
  /** `[samples]` each sequence's own length. */
  lengths: Uint32Array;
}

/**
 * Pads ragged sequences to one length and records each one's length. A sequence is `number[]`
 * (token ids when `tokens`, else one feature per step) or `number[][]` (`[step][feature]`).
 * Sequences longer than `maxLength` keep their last `maxLength` steps (`truncate: 'start'`,
 * the default) or their first (`'end'`).
 */
export function padSequences(
  sequences: readonly (readonly number[] | readonly (readonly number[])[])[],
  options: { tokens?: boolean; maxLength?: number; value?: number; truncate?: 'start' | 'end' } = {},
  what = 'x',
): PaddedSequences {
  if (!Array.isArray(sequences) || sequences.length === 0) {
    throw new InvalidArgumentError(`${what} must be a non-empty array of sequences, got ${describe(sequences)}`);
  }
  const tokens = options.tokens ?? false;
  const value = finite('value', options.value ?? 0);
  const truncate = oneOf('truncate', options.truncate ?? 'start', ['start', 'end']);
  let features = 1;
  const first = sequences[0];
  if (!tokens && Array.isArray(first) && Array.isArray(first[0])) features = (first[0] as number[]).length;
  const lengths = new Uint32Array(sequences.length);
  sequences.forEach((s, i) => {
    if (!Array.isArray(s)) throw new InvalidArgumentError(`${what}[${i}] must be an array of steps, got ${describe(s)}`);
    if (s.length === 0) throw new InvalidArgumentError(`${what}[${i}] is an empty sequence; every sequence needs at least one step`);
    lengths[i] = options.maxLength === undefined ? s.length : Math.min(s.length, positiveInt('maxLength', options.maxLength));
  });
  const steps = Math.max(...lengths);
  const per = tokens ? 1 : features;
  const data = tokens
    ? new Uint32Array(sequences.length * steps).fill(value)
    : new Float32Array(sequences.length * steps * per).fill(value);
  sequences.forEach((s, i) => {
    const from = truncate === 'start' ? s.length - lengths[i]! : 0;
    for (let t = 0; t < lengths[i]!; t++) {
      const step = s[from + t];
      const at = `${what}[${i}][${from + t}]`;
      const row = typeof step === 'number' ? [step] : step;
      if (!Array.isArray(row)) throw new InvalidArgumentError(`${at} must be a number or an array of features, got ${describe(step)}`);
      if (row.length !== per) throw new ShapeMismatchError(`${at} has ${row.length} features along dimension 2, expected ${per}`);
      row.forEach((v, f) => {
        if (tokens && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) {
          throw new InvalidArgumentError(`${at} must be a non-negative integer token id, got ${describe(v)}`);
        }
        if (typeof v !== 'number' || !Number.isFinite(v))
          throw new InvalidArgumentError(`${at}[${f}] must be a finite number, got ${describe(v)}`);
        data[(i * steps + t) * per + f] = v;
      });
    }
  });
  return { data, shape: tokens ? [sequences.length, steps] : [sequences.length, steps, per], lengths };
}

/**
 * One training example. `x`: `number[]` (token ids, or one feature per step) or `number[][]`
 * (`[step][feature]`). `y`: a class id, a value vector (`number[]`), or per step: class ids
 * (`number[]`, one per step) or value vectors (`number[][]`).
 */
export interface Sample {
  x: readonly number[] | readonly (readonly number[])[];
  y: number | readonly number[] | readonly (readonly number[])[];
  /** The sample's weight in the training loss (`fit`'s `sampleWeight`); default 1. */
  weight?: number;
}

type Source<T> = () => AsyncIterator<T> | Iterator<T>;

function sourceOf<T>(from: Iterable<T> | AsyncIterable<T> | (() => Iterable<T> | AsyncIterable<T>)): Source<T> {
  const open = (it: unknown): AsyncIterator<T> | Iterator<T> => {
    if (it && typeof (it as AsyncIterable<T>)[Symbol.asyncIterator] === 'function') return (it as AsyncIterable<T>)[Symbol.asyncIterator]();
    if (it && typeof (it as Iterable<T>)[Symbol.iterator] === 'function') return (it as Iterable<T>)[Symbol.iterator]();
    throw new InvalidArgumentError(
      `a dataset source must be an array, an iterable, an async iterable or a function returning one, got ${describe(it)}`,
    );
  };
  if (typeof from === 'function') return () => open(from());
  // A generator (or any iterator that is its own iterable) can be read once.
  let passes = 0;
  return () => {
    const it = open(from);
    if (passes++ > 0 && (it as unknown) === from) {
      throw new InvalidArgumentError(
        'this dataset reads a one-shot iterator (e.g. a generator object) that was already read; give Dataset.from a function returning a fresh iterable, Dataset.from(() => source()), to read it again (e.g. for more than one epoch)',
      );
    }
    return it;
  };
}

/**
 * A lazy sequence of items (usually {@link Sample}s) read from arrays, iterables, async
 * iterables or files, transformed on the fly. Iterate with `for await`. Every method returns a
 * new dataset; nothing is read until iteration. A dataset can be iterated again (each epoch) when
 * its source can: arrays, files, and functions returning a fresh iterable can; a one-shot
 * generator object cannot (a second pass throws, saying so).
 */
export class Dataset<T = Sample> implements AsyncIterable<T> {
  readonly #open: Source<T>;

  private constructor(open: Source<T>) {
    this.#open = open;
  }

  /**
   * A dataset over `source`: an array or other iterable, an async iterable (a stream, a
   * database cursor), or a function returning a fresh one for every pass.
   */
  static from<T>(source: Iterable<T> | AsyncIterable<T> | (() => Iterable<T> | AsyncIterable<T>)): Dataset<T> {
    return new Dataset(sourceOf(source));
  }

  /**
   * Samples from parallel arrays: `x[i]` with target `y[i]`.
   * @throws {ShapeMismatchError} when the arrays' lengths differ.
   */
  static fromArrays(x: readonly Sample['x'][], y: readonly Sample['y'][]): Dataset<Sample> {
    if (!Array.isArray(x)) throw new InvalidArgumentError(`x must be an array of sequences, got ${describe(x)}`);
    if (!Array.isArray(y) && !ArrayBuffer.isView(y)) throw new InvalidArgumentError(`y must be an array of targets, got ${describe(y)}`);
    if (x.length !== (y as ArrayLike<unknown>).length) {
      throw new ShapeMismatchError(`x has ${x.length} sequences but y has ${(y as ArrayLike<unknown>).length} targets`);
    }
    return Dataset.from(() =>
      (function* () {
        for (let i = 0; i < x.length; i++) yield { x: x[i]!, y: (y as ArrayLike<Sample['y']>)[i]! };
      })(),
    );
  }

  /** The lines of a text file, read as a stream (the file is never loaded whole). Empty lines are kept; filter them if needed. */
  static fromLines(path: string): Dataset<string> {
    nonEmptyString('path', path);
    return Dataset.from(() =>
      readingFile(createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity }), path),
    );
  }

  /**
   * The records of a JSON-lines file (one JSON value per line; blank lines skipped), streamed.
   * @throws {InvalidArgumentError} naming the line that is not valid JSON.
   */
  static fromJsonLines(path: string): Dataset<unknown> {
    return Dataset.fromLines(path)
      .mapWithIndex((line, i) => ({ line, i }))
      .filter(({ line }) => line.trim().length > 0)
      .map(({ line, i }) => {
        try {
          return JSON.parse(line) as unknown;
        } catch (err) {
          throw new InvalidArgumentError(`${path} line ${i + 1} is not valid JSON: ${(err as Error).message}`);
        }
      });
  }

  /**
   * The rows of a CSV file with a header line, streamed, as objects keyed by column name
   * (values are strings; see {@link Dataset.map}). Parsed with `csv-parse`.
   */
  static fromCsv(path: string, options: { delimiter?: string } = {}): Dataset<Record<string, string>> {
    nonEmptyString('path', path);
    return Dataset.from(() => {
      const parser = parse({ columns: true, skip_empty_lines: true, trim: true, delimiter: options.delimiter ?? ',' });
      // pipe() does not forward the file's errors: without this, a missing file is an unhandled 'error' event.
      const input = createReadStream(path).on('error', (err) => parser.destroy(err));
      return readingFile(input.pipe(parser) as AsyncIterable<Record<string, string>>, path);
    });
  }

  /** Opens one pass over the items. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    const it = this.#open();
    return {
      next: async () => it.next(),
      return: async (v?: unknown) => (it.return ? it.return(v as never) : { done: true, value: undefined as never }),
    };
  }

  /** Each item passed through `fn` (which may be async). */
  map<U>(fn: (item: T) => U | Promise<U>): Dataset<U> {
    return this.mapWithIndex((item) => fn(item));
  }

  /** Each item passed through `fn(item, index)`, the index counting from 0 in each pass. */
  mapWithIndex<U>(fn: (item: T, index: number) => U | Promise<U>): Dataset<U> {
    return Dataset.from(() => {
      const self = this;
      return (async function* () {
        let i = 0;
        for await (const item of self) yield await fn(item, i++);
      })();
    });
  }

  /** The items for which `fn` is true. */
  filter(fn: (item: T) => boolean): Dataset<T> {
    return Dataset.from(() => {
      const self = this;
      return (async function* () {
        for await (const item of self) if (fn(item)) yield item;
      })();
    });
  }

  /** The first `n` items. */
  take(n: number): Dataset<T> {
    nonNegativeInt('take(n): n', n);
    return Dataset.from(() => {
      const self = this;
      return (async function* () {
        if (n === 0) return;
        let i = 0;
        for await (const item of self) {
          yield item;
          if (++i >= n) return;
        }
      })();
    });
  }

  /**
   * Shuffled with a buffer of `bufferSize` items (seeded): the first `bufferSize` items fill it,
   * then each next item takes the place of one drawn at random. A buffer as large as the dataset
   * gives a uniform shuffle; a smaller one bounds memory for streams. Pass `n` (0, 1, 2, …)
   * shuffles with seed `seed + n`, so epochs differ and runs repeat.
   */
  shuffle(options: { bufferSize: number; seed?: number }): Dataset<T> {
    const size = positiveInt('shuffle bufferSize', options?.bufferSize);
    const seed = nonNegativeInt('shuffle seed', options.seed ?? 0);
    let pass = 0;
    return Dataset.from(() => {
      const self = this;
      const random = randomStream(seed + pass++);
      return (async function* () {
        const buffer: T[] = [];
        for await (const item of self) {
          if (buffer.length < size) {
            buffer.push(item);
            continue;
          }
          const j = Math.floor(random() * size);
          const out = buffer[j]!;
          buffer[j] = item;
          yield out;
        }
        // Drain in random order.
        for (let i = buffer.length - 1; i >= 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [buffer[i], buffer[j]] = [buffer[j]!, buffer[i]!];
          yield buffer[i]!;
        }
      })();
    });
  }

  /**
   * Groups items into batches of `size` (the last may be smaller unless `dropRemainder`). With
   * `bucketBy` (an item's length, e.g. `(s) => s.x.length`), `bucketSize` items at a time are
   * sorted by length before they are cut into batches, so sequences of similar lengths share a
   * batch and little padding is computed; the batches of a bucket come out in a seeded random
   * order.
   */
  batch(
    size: number,
    options: { dropRemainder?: boolean; bucketBy?: (item: T) => number; bucketSize?: number; seed?: number } = {},
  ): Dataset<T[]> {
    positiveInt('batch size', size);
    const bucketSize = options.bucketBy ? positiveInt('bucketSize', options.bucketSize ?? size * 16) : size;
    const drop = options.dropRemainder ?? false;
    let pass = 0;
    return Dataset.from(() => {
      const self = this;
      const random = randomStream((options.seed ?? 0) + pass++);
      return (async function* () {
        let pending: T[] = [];
        const flush = function* (final: boolean): Generator<T[]> {
          if (!options.bucketBy) {
            if (pending.length === size || (final && pending.length > 0 && !drop)) yield pending;
            pending = [];
            return;
          }
          const key = options.bucketBy;
          const sorted = pending
            .map((item) => ({ item, len: key(item) }))
            .sort((a, b) => a.len - b.len)
            .map((e) => e.item);
          const batches: T[][] = [];
          for (let i = 0; i < sorted.length; i += size) batches.push(sorted.slice(i, i + size));
          if (batches.length > 0 && batches[batches.length - 1]!.length < size && (drop || !final)) {
            // An incomplete batch waits for the next bucket (or is dropped at the end).
            pending = drop && final ? [] : batches.pop()!;
          } else pending = [];
          for (let i = batches.length - 1; i > 0; i--) {
            const j = Math.floor(random() * (i + 1));
            [batches[i], batches[j]] = [batches[j]!, batches[i]!];
          }
          yield* batches;
          if (final && pending.length > 0 && !drop) {
            yield pending;
            pending = [];
          }
        };
        for await (const item of self) {
          pending.push(item);
          if (pending.length >= bucketSize) yield* flush(false);
        }
        yield* flush(true);
      })();
    });
  }

  /**
   * Splits into `[train, validation]`: each item goes to validation with probability
   * `fraction`, decided by a hash of `seed` and its position, so the split needs no memory,
   * works on streams and is the same on every pass.
   */
  split(fraction: number, options: { seed?: number } = {}): [Dataset<T>, Dataset<T>] {
    numberIn('split fraction', fraction, 0, 1, '()');
    const seed = options.seed ?? 0;
    const pick = (validation: boolean) =>
      this.mapWithIndex((item, i) => ({ item, v: hashUnit(seed, i) < fraction }))
        .filter((e) => e.v === validation)
        .map((e) => e.item);
    return [pick(false), pick(true)];
  }

  /** Reads every item into an array (for small datasets and tests). */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const item of this) out.push(item);
    return out;
  }
}
