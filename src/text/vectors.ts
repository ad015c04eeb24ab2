/**
 * Pretrained word vectors for an embedding: {@link loadWordVectors} reads a GloVe or word2vec
 * text file (optionally gzipped) and lays its vectors out as the `weight` of an embedding over
 * a {@link WordTokenizer}'s ids, with a report of how much of the vocabulary the file covers.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { InvalidArgumentError } from '../errors.js';
import { describe } from '../util/check.js';
import { fileError, readingFile } from '../util/files.js';
import { randomStream } from '../util/random.js';
import { END_ID, UNKNOWN_ID, WordTokenizer } from './tokenizers.js';

/** Options of {@link loadWordVectors}. */
export interface WordVectorsOptions {
  /**
   * The rows of vocabulary words the file does not have: `'random'` (default) draws each value
   * from a normal distribution with the mean and standard deviation of the values of the rows
   * found (seeded by `seed`), `'zeros'` leaves them 0.
   */
  missing?: 'random' | 'zeros';
  /** Seed of the `'random'` rows. Default 0. */
  seed?: number;
}

/** What {@link loadWordVectors} returns. */
export interface WordVectors {
  /**
   * `[tokenizer.vocabSize, dim]` row-major: row `id` is the vector of the token with that id,
   * for an embedding's `weight` (`model.setParameters({ '0.weight': weight })`). The unknown id
   * (0) gets the mean of the rows found; the end id (1) and the words the file lacks are drawn
   * as `missing` says.
   */
  weight: Float32Array;
  /** Values per vector, the file's. */
  dim: number;
  /** How much of the tokenizer's vocabulary (`tokenizer.tokens`) the file covers. */
  coverage: {
    /** Vocabulary words with a vector in the file. */
    found: number;
    /** Vocabulary words (`tokenizer.tokens.length`). */
    total: number;
    /** `found / total`. */
    rate: number;
    /** The first 20 vocabulary words without a vector, most frequent first. */
    missing: string[];
  };
}

/** Lines of a text file, gunzipped when it starts with gzip's magic bytes. */
async function* lines(path: string): AsyncGenerator<string> {
  let gzip = false;
  try {
    const fh = await open(path, 'r');
    try {
      const head = Buffer.alloc(2);
      const { bytesRead } = await fh.read(head, 0, 2, 0);
      gzip = bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fileError(err, 'read word vectors', path);
  }
  const file = createReadStream(path);
  const text = gzip ? file.pipe(createGunzip()) : file;
  file.on('error', (err) => text.destroy(err));
  yield* readingFile(createInterface({ input: text, crlfDelay: Number.POSITIVE_INFINITY }), path);
}

/**
 * Reads word vectors in the GloVe text format (`word v1 … vd` per line) or word2vec's text
 * format (the same after a first line `count dim`), plain or gzipped (`.gz`, told by its
 * bytes), and lays out those of `tokenizer`'s vocabulary as an embedding's weight. Words are
 * matched as the tokenizer splits them: lowercased when it lowercases (the file's first vector
 * of a word wins). Only the vocabulary's vectors are kept in memory.
 * @throws {InvalidArgumentError} naming the file and line for a line with another number of
 *   values than the first, a value that is not a finite number, or a file with no vector;
 *   {@link FileError} when the file cannot be read.
 */
export async function loadWordVectors(path: string, tokenizer: WordTokenizer, options: WordVectorsOptions = {}): Promise<WordVectors> {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError(`path must be a non-empty string, got ${describe(path)}`);
  if (!(tokenizer instanceof WordTokenizer))
    throw new InvalidArgumentError(`tokenizer must be a WordTokenizer, got ${describe(tokenizer)}`);
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError(`options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (key !== 'missing' && key !== 'seed') throw new InvalidArgumentError(`unknown option ${key}; expected one of missing, seed`);
  }
  const missingRule = options.missing ?? 'random';
  if (missingRule !== 'random' && missingRule !== 'zeros')
    throw new InvalidArgumentError(`missing must be 'random' or 'zeros', got ${describe(options.missing)}`);
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
    throw new InvalidArgumentError(`seed must be an integer, got ${describe(seed)}`);

  const ids = new Map<string, number>();
  tokenizer.tokens.forEach((t, i) => {
    ids.set(t, i + 2);
  });
  const found = new Map<number, Float32Array>();
  let dim = 0;
  let lineNo = 0;
  const bad = (what: string): never => {
    throw new InvalidArgumentError(`${path}: line ${lineNo}: ${what}`);
  };
  for await (const line of lines(path)) {
    lineNo++;
    const fields = line.trimEnd().split(' ');
    if (fields.length === 1 && fields[0] === '') continue;
    if (lineNo === 1 && fields.length === 2 && /^\d+$/.test(fields[0]!) && /^\d+$/.test(fields[1]!)) continue; // word2vec header
    if (fields.length < 2) bad(`expected a word and its values, got ${JSON.stringify(line.slice(0, 80))}`);
    if (dim === 0) dim = fields.length - 1;
    else if (fields.length - 1 !== dim) bad(`${fields.length - 1} values, but the first vector has ${dim}`);
    const word = tokenizer.lowercase ? fields[0]!.toLowerCase() : fields[0]!;
    const id = ids.get(word);
    if (id === undefined || found.has(id)) continue;
    const v = new Float32Array(dim);
    for (let k = 0; k < dim; k++) {
      const x = Number(fields[k + 1]);
      if (!Number.isFinite(x) || fields[k + 1] === '')
        bad(`value ${k + 1} of ${JSON.stringify(fields[0])} is ${JSON.stringify(fields[k + 1])}, not a finite number`);
      v[k] = x;
    }
    found.set(id, v);
  }
  if (dim === 0) throw new InvalidArgumentError(`${path}: no word vectors in the file`);

  const rows = tokenizer.vocabSize;
  const weight = new Float32Array(rows * dim);
  let sum = 0;
  let sumSq = 0;
  const mean = new Float64Array(dim);
  for (const [id, v] of found) {
    weight.set(v, id * dim);
    for (let k = 0; k < dim; k++) {
      mean[k]! += v[k]!;
      sum += v[k]!;
      sumSq += v[k]! * v[k]!;
    }
  }
  const n = found.size * dim;
  if (found.size > 0) for (let k = 0; k < dim; k++) weight[UNKNOWN_ID * dim + k] = mean[k]! / found.size;
  const mu = n > 0 ? sum / n : 0;
  const sigma = n > 1 ? Math.sqrt(Math.max(0, sumSq / n - mu * mu)) : 1;
  const missingWords: string[] = [];
  const random = randomStream(seed);
  const normal = (): number => {
    // Box–Muller from two uniforms in (0, 1].
    const u = 1 - random();
    const w = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * w);
  };
  for (let id = END_ID; id < rows; id++) {
    if (found.has(id)) continue;
    if (id >= 2 && missingWords.length < 20) missingWords.push(tokenizer.tokens[id - 2]!);
    if (missingRule === 'random') for (let k = 0; k < dim; k++) weight[id * dim + k] = mu + sigma * normal();
  }
  const total = tokenizer.tokens.length;
  return { weight, dim, coverage: { found: found.size, total, rate: total > 0 ? found.size / total : 0, missing: missingWords } };
}
