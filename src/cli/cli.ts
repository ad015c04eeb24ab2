/**
 * The `gyre` command line: train a text generator, a forecaster or a text classifier from a
 * file, then generate, forecast, evaluate and inspect model files. Arguments are parsed by
 * `commander`; progress is drawn by `cli-progress`; the loss curve by `asciichart`.
 *
 * Every failure the user can cause (a bad flag, an unreadable or malformed file, a model of the
 * wrong kind) ends with one line `gyre: error: ...` on stderr and exit code 1, never a stack trace.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError as UsageError, Option } from 'commander';
import { parse as parseCsv } from 'csv-parse/sync';
import { GyreError, InvalidArgumentError } from '../errors.js';
import { loadModel, setNumThreads, type Model, type ProgressEvent } from '../model/index.js';
import { htmlReport, terminalLossChart, type TrainingRun } from './report.js';
import {
  type ClassifierEvaluation,
  CharTokenizer,
  Seq2Seq,
  type Seq2SeqEvaluation,
  type TextPair,
  TextClassifier,
  TextGenerator,
  textSequences,
  tokenizerFromJSON,
  type TextLabel,
  type Tokenizer,
  WordTokenizer,
} from '../text/index.js';
import { Forecaster } from '../data/timeseries.js';
import { NgramModel } from '../text/ngram.js';
import { seededRandom } from '../util/random.js';

/** An error the user caused, reported as one line. */
class CliError extends Error {}

type Task = 'text' | 'forecast' | 'classify' | 'seq2seq';

/** Where the CLI writes; tests pass their own. */
export interface CliIO {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Whether stderr is a terminal (draw a live progress bar) or not (print a line per epoch). */
  tty: boolean;
}

const defaultIO = (): CliIO => ({
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  tty: Boolean(process.stderr.isTTY),
});

// ---------------------------------------------------------------------------------------------
// Argument parsers: a bad value is a usage error naming the flag, in the words of the library's
// checks (src/util/check.ts), quoting the text given.

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    const what = min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer ≥ ${min}`;
    throw new UsageError(`must be ${what}, got ${JSON.stringify(v)}`);
  }
  return n;
};
const positive = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`must be a finite number > 0, got ${JSON.stringify(v)}`);
  return n;
};
const fraction = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n < 1)) throw new UsageError(`must be a number in (0, 1), got ${JSON.stringify(v)}`);
  return n;
};
const fractionOrZero = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n < 1)) throw new UsageError(`must be a number in [0, 1), got ${JSON.stringify(v)}`);
  return n;
};
/** The fraction `gyre train` holds out of a text or classification corpus by default. */
const DEFAULT_VALIDATION = 0.1;
const nonNegative = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`must be a finite number ≥ 0, got ${JSON.stringify(v)}`);
  return n;
};
const lags = (v: string) =>
  v.split(',').map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`must be positive integers, comma-separated, got ${JSON.stringify(v)}`);
    return n;
  });
const list = (v: string, prev: string[] = []) => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

// ---------------------------------------------------------------------------------------------
// Reading data files.

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CliError(
      `cannot read ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'it is a directory' : e.message}`,
    );
  }
}

/** The records of a JSON-lines file; a bad line is named. */
function readJsonLines(path: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  readText(path)
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch (err) {
        throw new CliError(`${path} line ${i + 1} is not valid JSON (${(err as Error).message})`);
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new CliError(`${path} line ${i + 1} must be a JSON object, got ${line.slice(0, 40)}`);
      out.push(v as Record<string, unknown>);
    });
  return out;
}

/** The rows of a CSV file with a header line. */
function readCsv(path: string): { columns: string[]; rows: Record<string, string>[] } {
  let rows: Record<string, string>[];
  try {
    rows = parseCsv(readText(path), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${path} is not valid CSV: ${(err as Error).message}`);
  }
  if (rows.length === 0) throw new CliError(`${path} has no data rows (a header line, then one row per line)`);
  return { columns: Object.keys(rows[0]!), rows };
}

/** Numeric columns of a CSV as a series `[time][feature]`; a non-numeric cell is named by line and column. */
function csvSeries(path: string, wanted: string[] | undefined): { series: number[][]; columns: string[] } {
  const { columns, rows } = readCsv(path);
  const use = wanted && wanted.length > 0 ? wanted : [columns[columns.length - 1]!];
  for (const c of use) {
    if (!columns.includes(c)) throw new CliError(`${path} has no column ${JSON.stringify(c)}; its columns are ${columns.join(', ')}`);
  }
  const series = rows.map((row, i) =>
    use.map((c) => {
      const cell = row[c] ?? '';
      const v = Number(cell);
      if (cell === '' || !Number.isFinite(v)) {
        throw new CliError(`${path} line ${i + 2}, column ${JSON.stringify(c)}: ${JSON.stringify(cell)} is not a number`);
      }
      return v;
    }),
  );
  return { series, columns: use };
}

/** Texts (and labels) of a data file: `.txt` one per line; `.jsonl` records; `.csv` columns. */
function readTexts(path: string, task: Task, opts: { textField: string; labelField: string }): { texts: string[]; labels?: TextLabel[] } {
  const ext = extname(path).toLowerCase();
  let texts: string[];
  let labels: TextLabel[] | undefined;
  const records: Record<string, unknown>[] | undefined =
    ext === '.jsonl' || ext === '.ndjson' ? readJsonLines(path) : ext === '.csv' ? readCsv(path).rows : undefined;
  if (records) {
    texts = records.map((r, i) => {
      const t = r[opts.textField];
      if (typeof t !== 'string')
        throw new CliError(`${path} record ${i + 1} has no string field ${JSON.stringify(opts.textField)} (use --text-field)`);
      return t;
    });
    if (task === 'classify') {
      labels = records.map((r, i) => {
        const l = r[opts.labelField];
        if (typeof l !== 'string' && !(typeof l === 'number' && Number.isFinite(l))) {
          throw new CliError(`${path} record ${i + 1} has no label field ${JSON.stringify(opts.labelField)} (use --label-field)`);
        }
        return l;
      });
    }
  } else {
    if (task === 'classify')
      throw new CliError(
        `classification reads labelled records: give a .jsonl or .csv file with ${opts.textField} and ${opts.labelField} fields, got ${path}`,
      );
    texts = readText(path)
      .split(/\r?\n/)
      .map((l) => l.trimEnd())
      .filter((l) => l.length > 0);
  }
  if (texts.length === 0 || texts.every((t) => t.trim() === '')) throw new CliError(`${path} has no text: the corpus is empty`);
  return labels ? { texts, labels } : { texts };
}

/** Source–target pairs of a file with one `source<TAB>target` pair per line (empty lines skipped). */
function readPairs(path: string): TextPair[] {
  const pairs: TextPair[] = [];
  readText(path)
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const tab = line.indexOf('\t');
      if (tab <= 0) throw new CliError(`${path} line ${i + 1}: expected "source<TAB>target", got ${JSON.stringify(line.slice(0, 60))}`);
      pairs.push([line.slice(0, tab), line.slice(tab + 1).trimEnd()]);
    });
  if (pairs.length === 0) throw new CliError(`${path} has no pairs (one "source<TAB>target" per line)`);
  return pairs;
}

/** Whether a file is an encoder–decoder's (its safetensors header says `"format": "gyre-seq2seq"`). */
function isSeq2SeqFile(path: string): boolean {
  const bytes = readFileSync(path);
  if (bytes.length < 8) return false;
  const n = Number(bytes.readBigUInt64LE(0));
  if (n > bytes.length - 8) return false;
  try {
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__?: { format?: unknown } };
    return header.__metadata__?.format === 'gyre-seq2seq';
  } catch {
    return false;
  }
}

/**
 * The texts (and labels) in a seeded random order: files are often sorted (alphabetically, by
 * class), and the validation split takes the last samples.
 */
function shuffled(texts: string[], labels: TextLabel[] | undefined, seed: number): { texts: string[]; labels?: TextLabel[] } {
  const random = seededRandom(seed);
  const order = texts.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const t = order.map((i) => texts[i]!);
  return labels ? { texts: t, labels: order.map((i) => labels[i]!) } : { texts: t };
}

function taskOf(path: string, explicit: string | undefined): Task {
  if (explicit) return explicit as Task;
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'forecast';
  if (ext === '.jsonl' || ext === '.ndjson') return 'classify';
  if (ext === '.tsv') return 'seq2seq';
  return 'text';
}

// ---------------------------------------------------------------------------------------------
// Model files.

/** The model file and the `gyre.task` its metadata names (`undefined` for a plain model). */
async function openModel(path: string): Promise<{ model: Model; task: string | undefined }> {
  readText(path); // a missing file is reported as such, not as a bad model file
  let model: Model;
  try {
    model = await loadModel(path);
  } catch (err) {
    if (err instanceof GyreError && err.code === 'GYRE_BAD_FILE') {
      const reason = err.message.startsWith(`${path}: `) ? err.message.slice(path.length + 2) : err.message;
      throw new CliError(`${path} is not a gyre model file: ${reason}`);
    }
    throw err;
  }
  const g = model.metadata.gyre as Record<string, unknown> | undefined;
  return { model, task: g && typeof g.task === 'string' ? g.task : undefined };
}

const TRAINED_BY: Record<Task, string> = {
  text: 'gyre train <file.txt>',
  forecast: 'gyre train <file.csv>',
  classify: 'gyre train <file.jsonl> --task classify',
  seq2seq: 'gyre train <pairs.tsv>',
};

async function openTask(path: string, want: Task, command: string): Promise<Model> {
  const { model, task } = await openModel(path);
  if (task !== want) {
    const kind = task === undefined ? 'a plain model (no gyre task in its metadata)' : `a '${task}' model`;
    throw new CliError(`${path} is ${kind}; gyre ${command} needs a '${want}' model (made by ${TRAINED_BY[want]})`);
  }
  return model;
}

// ---------------------------------------------------------------------------------------------
// Progress.

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

/** Shows training progress (a live bar on a terminal, else a line per epoch) and keeps every event. */
class Progress {
  readonly events: ProgressEvent[] = [];
  #bar: SingleBar | undefined;
  readonly #started = performance.now();

  constructor(
    private readonly io: CliIO,
    private readonly epochs: number,
    private readonly quiet: boolean,
  ) {}

  readonly onProgress = (e: ProgressEvent): void => {
    this.events.push(e);
    if (this.quiet) return;
    const elapsed = (performance.now() - this.#started) / 1000;
    if (e.kind === 'batch' && this.io.tty) {
      const total = this.epochs * (e.batches ?? 1);
      const done = (e.epoch - this.#firstEpoch()) * (e.batches ?? 1) + (e.batch ?? 0);
      const payload = {
        ep: `${e.epoch - this.#firstEpoch() + 1}/${this.epochs}`,
        loss: e.loss.toFixed(4),
        sps: Math.round(e.samplesPerSecond),
        eta: formatSeconds((elapsed / done) * (total - done)),
      };
      if (!this.#bar) {
        this.#bar = new SingleBar(
          {
            format: 'epoch {ep} {bar} {percentage}% | loss {loss} | {sps} samples/s | ETA {eta}',
            hideCursor: true,
            clearOnComplete: false,
            stream: process.stderr,
          },
          Presets.shades_classic,
        );
        this.#bar.start(total, done, payload);
      }
      this.#bar.setTotal(total);
      this.#bar.update(done, payload);
    } else if (e.kind === 'epoch' && !this.io.tty) {
      const n = e.epoch - this.#firstEpoch() + 1;
      const parts = [`epoch ${n}/${this.epochs}`, `loss ${e.loss.toFixed(4)}`];
      if (e.accuracy !== undefined) parts.push(`accuracy ${e.accuracy.toFixed(3)}`);
      if (e.valLoss !== undefined) parts.push(`val loss ${e.valLoss.toFixed(4)}`);
      if (e.valAccuracy !== undefined) parts.push(`val accuracy ${e.valAccuracy.toFixed(3)}`);
      parts.push(`${Math.round(e.samplesPerSecond)} samples/s`, `ETA ${formatSeconds((elapsed / n) * (this.epochs - n))}`);
      this.io.err(parts.join(' | '));
    }
  };

  #firstEpoch(): number {
    return this.events.find((e) => e.epoch !== undefined)?.epoch ?? 1;
  }

  stop(): void {
    this.#bar?.stop();
  }

  get seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands.

interface TrainFlags {
  out?: string;
  task?: Task;
  cell: 'lstm' | 'gru' | 'rnn';
  hidden?: number;
  layers: number;
  epochs?: number;
  batchSize: number;
  lr?: number;
  seed: number;
  validation?: number;
  patience: number;
  dropout: number;
  report?: string;
  tokenizer: 'char' | 'word';
  maxLength: number;
  column?: string[];
  inputLength: number;
  horizon: number;
  holdout: number;
  difference?: number[];
  period?: number;
  textField: string;
  labelField: string;
  samples: number;
  temperature: number;
  quiet?: boolean;
  targetTokenizer?: 'char' | 'word';
  labelSmoothing: number;
  beam: number;
}

async function train(io: CliIO, data: string, f: TrainFlags): Promise<void> {
  const task = taskOf(data, f.task);
  if (task === 'seq2seq') return trainSeq2Seq(io, data, f);
  const out = f.out ?? `${basename(data, extname(data))}.safetensors`;
  const settings: Record<string, string | number | boolean> = {
    data,
    task,
    cell: f.cell,
    layers: f.layers,
    batchSize: f.batchSize,
    seed: f.seed,
  };
  const results: Record<string, string | number> = {};
  let progress: Progress;
  const common = (epochs: number) => {
    progress = new Progress(io, epochs, Boolean(f.quiet));
    const o: {
      cell: 'lstm' | 'gru' | 'rnn';
      numLayers: number;
      epochs: number;
      batchSize: number;
      seed: number;
      onProgress: (e: ProgressEvent) => void;
      validationSplit?: number;
      earlyStopping?: { patience: number; restoreBest: true };
      dropout?: number;
    } = {
      cell: f.cell,
      numLayers: f.layers,
      epochs,
      batchSize: f.batchSize,
      seed: f.seed,
      onProgress: progress.onProgress,
    };
    // Text and classification hold out 10% by default, stop once it stops improving and keep
    // the best epoch (--validation 0 / --patience 0 turn that off).
    const split = f.validation ?? (task === 'forecast' ? 0 : DEFAULT_VALIDATION);
    if (split > 0) {
      o.validationSplit = split;
      if (f.patience > 0) o.earlyStopping = { patience: f.patience, restoreBest: true };
      Object.assign(settings, { validation: split, patience: f.patience });
    }
    if (f.dropout > 0) {
      if (task === 'forecast') throw new CliError('--dropout is for text and classification models');
      o.dropout = f.dropout;
      settings.dropout = f.dropout;
    }
    return o;
  };
  if (task === 'text') {
    const { texts } = shuffled(readTexts(data, task, f).texts, undefined, f.seed);
    const epochs = f.epochs ?? 20;
    const hiddenSize = f.hidden ?? 128;
    const learningRate = f.lr ?? 0.005;
    Object.assign(settings, { texts: texts.length, tokenizer: f.tokenizer, hiddenSize, epochs, learningRate, maxLength: f.maxLength });
    io.err(`training ${cellName(f.cell)} ${f.tokenizer}-level text generator on ${texts.length} texts from ${data}`);
    const gen = await TextGenerator.train(texts, {
      ...common(epochs),
      tokenizer: f.tokenizer,
      hiddenSize,
      learningRate,
      maxLength: f.maxLength,
    });
    progress!.stop();
    // The baseline: a character (token) 4-gram fitted on the sequences the model trained on,
    // scored on the held-out ones (the whole corpus without a split), beside the model's loss.
    const { x, y } = textSequences(texts, gen.tokenizer, { maxLength: f.maxLength });
    const split = f.validation ?? DEFAULT_VALIDATION;
    const keep = split > 0 ? x.length - Math.round(x.length * split) : x.length;
    const ngram = new NgramModel(4, gen.tokenizer.vocabSize).fit(x.slice(0, keep), y.slice(0, keep));
    const [hx, hy] = keep < x.length ? [x.slice(keep), y.slice(keep)] : [x, y];
    const heldOut = keep < x.length ? `the ${x.length - keep} held-out sequences` : `the ${x.length} training sequences`;
    const modelLoss = (await gen.model.evaluate(hx, hy, { loss: 'crossEntropy' })).loss;
    const baseline = ngram.crossEntropy(hx, hy);
    results[`cross-entropy on ${heldOut} (nats/token)`] = modelLoss;
    results[`4-gram baseline on ${heldOut} (nats/token)`] = baseline;
    await gen.save(out, { baseline: ngram });
    const samples = Array.from({ length: f.samples }, (_, i) =>
      gen.generate({ temperature: f.temperature, randomSeed: f.seed * 1000 + i, maxLength: f.maxLength }).trim(),
    );
    results.vocabulary = gen.tokenizer.vocabSize;
    results.samples = samples.join(', ');
    finish(io, progress!, out, settings, results, f.report, data);
    io.out(
      `cross-entropy on ${heldOut}: ${modelLoss.toFixed(4)} nats/token; character 4-gram baseline (Witten-Bell, fitted on the training sequences) ${baseline.toFixed(4)}`,
    );
    io.out(`samples (temperature ${f.temperature}):`);
    for (const s of samples) io.out(`  ${s}`);
  } else if (task === 'forecast') {
    const { series, columns } = csvSeries(data, f.column);
    const epochs = f.epochs ?? 20;
    const hiddenSize = f.hidden ?? 32;
    const learningRate = f.lr ?? 0.01;
    const test = Math.floor(series.length * f.holdout);
    const trainPart = series.slice(0, series.length - test);
    Object.assign(settings, {
      columns: columns.join(','),
      steps: series.length,
      heldOut: test,
      inputLength: f.inputLength,
      horizon: f.horizon,
      hiddenSize,
      epochs,
      learningRate,
    });
    io.err(
      `training ${cellName(f.cell)} forecaster on ${trainPart.length} steps of ${columns.join(', ')} from ${data} (the last ${test} held out)`,
    );
    if (f.difference) settings.difference = f.difference.join(',');
    const fc = await Forecaster.train(trainPart, {
      ...common(epochs),
      inputLength: f.inputLength,
      horizon: f.horizon,
      hiddenSize,
      learningRate,
      ...(f.difference ? { difference: f.difference } : {}),
      ...(f.period !== undefined ? { period: f.period } : {}),
    });
    progress!.stop();
    await fc.model.save(out, { includeOptimizer: false, metadata: { gyre: { ...fc.metadata, columns } } });
    if (fc.period !== undefined) settings.period = fc.period;
    if (test > 0) {
      // The held-out steps, with the inputLength (and differencing) steps before them as context.
      const context = f.inputLength + (f.difference ?? []).reduce((a, b) => a + b, 0);
      const evaluation = fc.evaluateSync(series.slice(Math.max(0, series.length - test - context)));
      Object.assign(results, { heldOutMae: evaluation.mae, naiveMae: evaluation.naiveMae, heldOutMse: evaluation.mse });
      if (evaluation.seasonalNaiveMae !== undefined) results.seasonalNaiveMae = evaluation.seasonalNaiveMae;
    }
    finish(io, progress!, out, settings, results, f.report, data);
    if (test > 0)
      io.out(
        `held-out MAE ${fmt(results.heldOutMae as number)} (repeat-last-value baseline ${fmt(results.naiveMae as number)}${results.seasonalNaiveMae === undefined ? '' : `, seasonal-naive (period ${fc.period}) ${fmt(results.seasonalNaiveMae as number)}`}) over ${test} steps`,
      );
  } else {
    const read = readTexts(data, task, f);
    const { texts, labels } = shuffled(read.texts, read.labels, f.seed);
    const epochs = f.epochs ?? 10;
    const hiddenSize = f.hidden ?? 64;
    const learningRate = f.lr ?? 0.005;
    Object.assign(settings, { texts: texts.length, tokenizer: f.tokenizer, hiddenSize, epochs, learningRate });
    io.err(`training ${cellName(f.cell)} classifier on ${texts.length} labelled texts from ${data}`);
    const clf = await TextClassifier.train(texts, labels!, { ...common(epochs), tokenizer: f.tokenizer, hiddenSize, learningRate });
    progress!.stop();
    await clf.save(out);
    const last = progress!.events.filter((e) => e.kind === 'epoch').at(-1);
    if (last?.accuracy !== undefined) results.trainingAccuracy = last.accuracy;
    if (last?.valAccuracy !== undefined) results.validationAccuracy = last.valAccuracy;
    results.labels = clf.labels.join(', ');
    // Per-label figures and the confusion matrix on the held-out texts (the training texts without a split).
    const held = f.validation ? Math.round(texts.length * f.validation) : 0;
    const evalTexts = held > 0 ? texts.slice(texts.length - held) : texts;
    const e = clf.evaluate(evalTexts, (held > 0 ? labels!.slice(texts.length - held) : labels)!);
    const on = held > 0 ? `the ${held} validation texts` : `the ${texts.length} training texts`;
    results[`macro F1 (${on})`] = e.macro.f1;
    finish(io, progress!, out, settings, results, f.report, data, {
      title: `Confusion matrix on ${on}`,
      labels: clf.labels.map(String),
      matrix: e.confusion,
    });
    io.out(`on ${on}:`);
    for (const line of classReport(e)) io.out(line);
  }
}

/** A tokenizer of `kind` over `texts`: characters as they are, words as written (no lowercasing: targets come back as given). */
function pairTokenizer(kind: 'char' | 'word', texts: string[]): Tokenizer {
  return kind === 'word' ? WordTokenizer.fromCorpus(texts, { lowercase: false }) : CharTokenizer.fromCorpus(texts);
}

/** One line of an encoder–decoder evaluation. */
function seq2seqLine(e: Seq2SeqEvaluation, beam: number): string {
  return `exact match ${(100 * e.exactMatch).toFixed(2)}% (sequence error rate ${(100 * (1 - e.exactMatch)).toFixed(2)}%), token error rate ${(100 * e.tokenErrorRate).toFixed(2)}%, cross-entropy ${e.loss.toFixed(4)} per token, over ${e.count} pairs (beam ${beam})`;
}

async function trainSeq2Seq(io: CliIO, data: string, f: TrainFlags): Promise<void> {
  const out = f.out ?? `${basename(data, extname(data))}.safetensors`;
  const all = readPairs(data);
  // Files are often sorted: the held-out pairs are a seeded random share.
  const random = seededRandom(f.seed);
  const order = all.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const split = f.validation ?? DEFAULT_VALIDATION;
  const held = Math.round(all.length * split);
  const trainPairs = order.slice(0, all.length - held).map((i) => all[i]!);
  const heldPairs = order.slice(all.length - held).map((i) => all[i]!);
  const epochs = f.epochs ?? 20;
  const hiddenSize = f.hidden ?? 128;
  const learningRate = f.lr ?? 0.002;
  const targetKind = f.targetTokenizer ?? f.tokenizer;
  const settings: Record<string, string | number | boolean> = {
    data,
    task: 'seq2seq',
    pairs: all.length,
    heldOut: heldPairs.length,
    cell: f.cell,
    layers: f.layers,
    hiddenSize,
    sourceTokenizer: f.tokenizer,
    targetTokenizer: targetKind,
    epochs,
    batchSize: f.batchSize,
    learningRate,
    labelSmoothing: f.labelSmoothing,
    dropout: f.dropout,
    patience: f.patience,
    beam: f.beam,
    seed: f.seed,
  };
  io.err(
    `training an encoder–decoder (bidirectional ${cellName(f.cell).split(' ')[1]} encoder, attention decoder) on ${trainPairs.length} pairs from ${data}${heldPairs.length > 0 ? ` (${heldPairs.length} held out)` : ''}`,
  );
  const progress = new Progress(io, epochs, Boolean(f.quiet));
  const s2s = await Seq2Seq.train(trainPairs, {
    sourceTokenizer: pairTokenizer(
      f.tokenizer,
      trainPairs.map((p) => p[0]),
    ),
    targetTokenizer: pairTokenizer(
      targetKind,
      trainPairs.map((p) => p[1]),
    ),
    cell: f.cell,
    hiddenSize,
    numLayers: f.layers,
    epochs,
    batchSize: f.batchSize,
    learningRate,
    labelSmoothing: f.labelSmoothing,
    dropout: f.dropout,
    validation: heldPairs,
    patience: f.patience > 0 ? f.patience : epochs,
    seed: f.seed,
    onEpoch: (e) => {
      const event: ProgressEvent = {
        kind: 'epoch',
        epoch: e.epoch,
        loss: e.loss,
        learningRate: e.learningRate,
        samplesPerSecond: trainPairs.length / e.seconds,
      };
      if (e.validationLoss !== undefined) event.valLoss = e.validationLoss;
      progress.onProgress(event);
    },
  });
  progress.stop();
  await s2s.save(out);
  const results: Record<string, string | number> = { parameters: s2s.parameterCount };
  let attention: TrainingRun['attention'];
  if (heldPairs.length > 0) {
    const e = await s2s.evaluate(heldPairs, { beamWidth: f.beam });
    Object.assign(results, {
      [`exact match on the ${heldPairs.length} held-out pairs`]: e.exactMatch,
      'token error rate (held out)': e.tokenErrorRate,
      'cross-entropy per token (held out)': e.loss,
    });
    const shown = await s2s.transduce(
      heldPairs.slice(0, 3).map((p) => p[0]),
      { beamWidth: f.beam },
    );
    attention = {
      title: `Attention on ${shown.length} held-out example(s) (beam ${f.beam})`,
      examples: shown.map((r) => ({ source: r.sourceTokens, output: [...r.tokens, '⟨end⟩'], weights: r.attention })),
    };
    for (const [k, r] of shown.entries()) results[`example ${k + 1}`] = `${heldPairs[k]![0]} → ${r.text} (reference ${heldPairs[k]![1]})`;
  }
  finish(io, progress, out, settings, results, f.report, data, undefined, attention);
  if (heldPairs.length > 0) {
    const e = results[`exact match on the ${heldPairs.length} held-out pairs`] as number;
    io.out(
      `held out: exact match ${(100 * e).toFixed(2)}%, token error rate ${(100 * (results['token error rate (held out)'] as number)).toFixed(2)}% (beam ${f.beam})`,
    );
  }
}

/** Per-label precision, recall, F1 and support, the macro means, then the confusion matrix, as aligned lines. */
function classReport(e: ClassifierEvaluation): string[] {
  const names = e.perLabel.map((p) => String(p.label));
  const w = Math.max(5, ...names.map((n) => n.length));
  const pad = (v: string, n = w) => v.padStart(n);
  const lines = [`${pad('label')}  precision  recall      f1  support`];
  for (const p of e.perLabel) {
    lines.push(
      `${pad(String(p.label))}  ${pad(p.precision.toFixed(3), 9)}  ${pad(p.recall.toFixed(3), 6)}  ${pad(p.f1.toFixed(3), 6)}  ${pad(String(p.support), 7)}`,
    );
  }
  lines.push(
    `${pad('macro')}  ${pad(e.macro.precision.toFixed(3), 9)}  ${pad(e.macro.recall.toFixed(3), 6)}  ${pad(e.macro.f1.toFixed(3), 6)}`,
  );
  const cell = Math.max(w, ...e.confusion.flat().map((v) => String(v).length));
  lines.push(`confusion (rows: label, columns: predicted):`);
  lines.push(`${pad('', w)}  ${names.map((n) => pad(n, cell)).join(' ')}`);
  for (const [k, row] of e.confusion.entries()) lines.push(`${pad(names[k]!)}  ${row.map((v) => pad(String(v), cell)).join(' ')}`);
  return lines;
}

/** "an LSTM", "a GRU", "an RNN". */
const cellName = (cell: string) => `${cell === 'gru' ? 'a' : 'an'} ${cell.toUpperCase()}`;

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4));

function finish(
  io: CliIO,
  progress: Progress,
  out: string,
  settings: Record<string, string | number | boolean>,
  results: Record<string, string | number>,
  report: string | undefined,
  data: string,
  confusion?: TrainingRun['confusion'],
  attention?: TrainingRun['attention'],
): void {
  const epochs = progress.events.filter((e) => e.kind === 'epoch');
  const last = epochs.at(-1);
  const chart = terminalLossChart(progress.events);
  if (chart) io.out(chart);
  if (last) {
    const parts = [`final loss ${last.loss.toFixed(4)}`];
    if (last.valLoss !== undefined) parts.push(`validation loss ${last.valLoss.toFixed(4)}`);
    if (last.accuracy !== undefined) parts.push(`accuracy ${last.accuracy.toFixed(3)}`);
    if (last.valAccuracy !== undefined) parts.push(`validation accuracy ${last.valAccuracy.toFixed(3)}`);
    io.out(`${parts.join(', ')} after ${epochs.length} epochs in ${progress.seconds.toFixed(1)} s`);
    if (settings.patience !== undefined && last.valLoss !== undefined) {
      const best = epochs.reduce((b, e) => ((e.valLoss ?? Infinity) < (b.valLoss ?? Infinity) ? e : b));
      if (best !== last) io.out(`kept the best epoch, ${best.epoch} (validation loss ${best.valLoss!.toFixed(4)})`);
    }
  }
  io.out(`model saved to ${out}`);
  if (report) {
    writeFileSync(
      report,
      htmlReport({
        title: `gyre train ${data}`,
        settings,
        events: progress.events,
        results,
        seconds: progress.seconds,
        ...(confusion ? { confusion } : {}),
        ...(attention ? { attention } : {}),
      }),
    );
    io.out(`report written to ${report}`);
  }
}

async function generate(
  io: CliIO,
  path: string,
  f: {
    seedText: string;
    count: number;
    length: number;
    temperature: number;
    topK?: number;
    topP?: number;
    randomSeed: number;
    strict?: boolean;
  },
): Promise<void> {
  const gen = TextGenerator.fromModel(await openTask(path, 'text', 'generate'));
  const unknown = [...new Set(gen.tokenizer.kind === 'char' ? Array.from(f.seedText) : f.seedText.split(/\s+/).filter(Boolean))].filter(
    (t) => gen.tokenizer.encode(t, { unknown: 'skip' }).length === 0,
  );
  if (unknown.length > 0) {
    const what = `the seed text has ${gen.tokenizer.kind === 'char' ? 'characters' : 'words'} outside the model's vocabulary: ${unknown.map((u) => JSON.stringify(u)).join(', ')}`;
    if (f.strict) throw new CliError(`${what} (without --strict they are read as the unknown token)`);
    io.err(`warning: ${what}; they are read as the unknown token`);
  }
  for (let i = 0; i < f.count; i++) {
    const opts: Parameters<TextGenerator['generate']>[0] = {
      seed: f.seedText,
      maxLength: f.length,
      temperature: f.temperature,
      randomSeed: f.randomSeed + i,
    };
    if (f.topK !== undefined) opts.topK = f.topK;
    if (f.topP !== undefined) opts.topP = f.topP;
    io.out(gen.generate(opts).trim());
  }
}

async function transduce(
  io: CliIO,
  path: string,
  texts: string[],
  f: { beam: number; nBest: number; lengthPenalty: number; ensemble?: string[]; json?: boolean },
): Promise<void> {
  const paths = [path, ...(f.ensemble ?? [])];
  for (const p of paths) {
    readText(p);
    if (!isSeq2SeqFile(p)) throw new CliError(`${p} is not an encoder–decoder; gyre transduce needs a model made by ${TRAINED_BY.seq2seq}`);
  }
  if (f.nBest > f.beam) throw new CliError(`--n-best (${f.nBest}) must not exceed --beam (${f.beam})`);
  const [s2s, ...ensemble] = await Promise.all(paths.map((p) => Seq2Seq.load(p)));
  const out = await s2s!.transduce(texts, {
    beamWidth: f.beam,
    nBest: f.nBest,
    lengthPenalty: f.lengthPenalty,
    ...(ensemble.length > 0 ? { ensemble } : {}),
  });
  if (f.json) {
    io.out(
      JSON.stringify(
        out.map((r, i) => ({
          source: texts[i],
          outputs: r.nBest.map((h) => ({ text: h.text, logProb: h.logProb, score: h.score, finished: h.finished })),
        })),
      ),
    );
    return;
  }
  for (const [i, r] of out.entries()) {
    if (f.nBest === 1) io.out(`${texts[i]}\t${r.text}`);
    else for (const h of r.nBest) io.out(`${texts[i]}\t${h.text}\t${h.score.toFixed(4)}`);
  }
}

async function forecast(io: CliIO, path: string, data: string, f: { steps?: number; column?: string[]; json?: boolean }): Promise<void> {
  const model = await openTask(path, 'forecast', 'forecast');
  const fc = Forecaster.fromModel(model);
  const saved = (model.metadata.gyre as { columns?: unknown }).columns;
  const columns = f.column ?? (Array.isArray(saved) ? (saved as string[]) : undefined);
  const { series, columns: used } = csvSeries(data, columns);
  if (used.length !== fc.features)
    throw new CliError(`the model reads ${fc.features} column(s), got ${used.length} (${used.join(', ')}); use --column`);
  const steps = f.steps ?? fc.horizon;
  const r = fc.forecast(series, steps);
  const targets = fc.targets.map((t) => used[t]!);
  if (f.json) {
    io.out(
      JSON.stringify({
        columns: targets,
        forecast: Array.from({ length: steps }, (_, k) => Array.from(r.data.subarray(k * targets.length, (k + 1) * targets.length))),
      }),
    );
    return;
  }
  io.out(`forecast of ${targets.join(', ')} for the ${steps} step(s) after the ${series.length} in ${data}:`);
  io.out(['step', ...targets].join('\t'));
  for (let k = 0; k < steps; k++)
    io.out([`+${k + 1}`, ...Array.from(r.data.subarray(k * targets.length, (k + 1) * targets.length), (v) => fmt(v))].join('\t'));
}

async function evaluate(
  io: CliIO,
  path: string,
  data: string,
  f: { column?: string[]; textField: string; labelField: string; maxLength: number; beam: number },
): Promise<void> {
  readText(path);
  if (isSeq2SeqFile(path)) {
    const s2s = await Seq2Seq.load(path);
    io.out(`${data}: ${seq2seqLine(await s2s.evaluate(readPairs(data), { beamWidth: f.beam }), f.beam)}`);
    return;
  }
  const { model, task } = await openModel(path);
  if (task === 'text') {
    const gen = TextGenerator.fromModel(model);
    const { texts } = readTexts(data, 'text', f);
    const { x, y } = textSequences(texts, gen.tokenizer, { maxLength: f.maxLength });
    const e = await model.evaluate(x, y, { loss: 'crossEntropy', metrics: { topK: 5 } });
    io.out(
      `${data}: cross-entropy ${e.loss.toFixed(4)} per token (perplexity ${Math.exp(e.loss).toFixed(2)}), next-token accuracy ${e.accuracy!.toFixed(3)} (top-5 ${e.topKAccuracy!.toFixed(3)}) over ${texts.length} texts`,
    );
    const stored = (model.metadata.gyre as { baseline?: unknown }).baseline;
    if (stored !== undefined) {
      const ngram = NgramModel.fromJSON(stored);
      io.out(
        `${data}: character ${ngram.order}-gram baseline (Witten-Bell, fitted on the training sequences) ${ngram.crossEntropy(x, y).toFixed(4)} per token`,
      );
    }
  } else if (task === 'forecast') {
    const fc = Forecaster.fromModel(model);
    const saved = (model.metadata.gyre as { columns?: unknown }).columns;
    const { series } = csvSeries(data, f.column ?? (Array.isArray(saved) ? (saved as string[]) : undefined));
    const e = await fc.evaluate(series);
    io.out(
      `${data}: MAE ${fmt(e.mae)}, RMSE ${fmt(Math.sqrt(e.mse))} (MSE ${fmt(e.mse)}) over ${e.windows} windows; repeat-last-value baseline MAE ${fmt(e.naiveMae)}${e.seasonalNaiveMae === undefined ? '' : `, seasonal-naive (period ${e.period}) MAE ${fmt(e.seasonalNaiveMae)}`}`,
    );
  } else if (task === 'classify') {
    const clf = TextClassifier.fromModel(model);
    const { texts, labels } = readTexts(data, 'classify', f);
    const e = clf.evaluate(texts, labels!);
    io.out(`${data}: accuracy ${e.accuracy.toFixed(3)}, cross-entropy ${e.loss.toFixed(4)} over ${texts.length} texts`);
    for (const line of classReport(e)) io.out(line);
  } else {
    throw new CliError(`${path} is a plain model (no gyre task in its metadata); gyre eval needs a model made by gyre train`);
  }
}

async function info(io: CliIO, path: string, f: { json?: boolean }): Promise<void> {
  readText(path);
  if (isSeq2SeqFile(path)) {
    const s2s = await Seq2Seq.load(path);
    const summary = {
      file: path,
      task: 'seq2seq',
      parameters: s2s.parameterCount,
      trainedEpochs: s2s.epochs,
      config: s2s.config,
      sourceTokenizer: { kind: s2s.sourceTokenizer.kind, vocabSize: s2s.sourceTokenizer.vocabSize },
      targetTokenizer: { kind: s2s.targetTokenizer.kind, vocabSize: s2s.targetTokenizer.vocabSize },
    };
    if (f.json) {
      io.out(JSON.stringify(summary, null, 2));
      return;
    }
    const c = s2s.config as { cell: string; hidden: number; layers: number; bidirectional: boolean; score: unknown; inputFeeding: boolean };
    io.out(`${path}: seq2seq model, ${s2s.parameterCount.toLocaleString('en-US')} parameters, ${s2s.epochs} epoch(s) trained`);
    io.out(
      `  encoder: ${c.layers} ${c.bidirectional ? 'bidirectional ' : ''}${c.cell} layer(s), hidden ${c.hidden}; decoder: ${c.cell} with ${typeof c.score === 'string' ? c.score : 'additive'} attention${c.inputFeeding ? ' and input feeding' : ''}`,
    );
    io.out(
      `  source tokenizer: ${summary.sourceTokenizer.kind}-level, ${summary.sourceTokenizer.vocabSize} ids; target: ${summary.targetTokenizer.kind}-level, ${summary.targetTokenizer.vocabSize} ids`,
    );
    return;
  }
  const { model, task } = await openModel(path);
  const meta = model.metadata;
  const g = (meta.gyre ?? {}) as Record<string, unknown>;
  const summary: Record<string, unknown> = {
    file: path,
    task: task ?? 'plain',
    parameters: model.parameterCount,
    trainedEpochs: model.trainedEpochs,
    input: model.config.input,
    layers: model.config.layers,
    summary: model.summary(),
  };
  if (g.tokenizer !== undefined) {
    const t = tokenizerFromJSON(g.tokenizer);
    summary.tokenizer = { kind: t.kind, vocabSize: t.vocabSize };
  }
  if (g.labels !== undefined) summary.labels = g.labels;
  for (const k of ['inputLength', 'horizon', 'columns', 'normalizer']) if (g[k] !== undefined) summary[k] = g[k];
  if (f.json) {
    io.out(JSON.stringify(summary, null, 2));
    return;
  }
  io.out(
    `${path}: ${task ?? 'plain'} model, ${model.parameterCount.toLocaleString('en-US')} parameters, ${model.trainedEpochs} epoch(s) trained`,
  );
  const input = model.config.input;
  io.out(`  input: ${'vocabSize' in input ? `token ids below ${input.vocabSize}` : `${input.features} feature(s) per step`}`);
  for (const line of model.summary({ format: 'text' }).split('\n').slice(1, -1)) io.out(`  ${line}`);
  const tk = summary.tokenizer as { kind: string; vocabSize: number } | undefined;
  if (tk) io.out(`  tokenizer: ${tk.kind}-level, ${tk.vocabSize} ids (0 unknown, 1 end of text)`);
  if (summary.labels) io.out(`  labels: ${(summary.labels as unknown[]).map(String).join(', ')}`);
  if (g.inputLength !== undefined)
    io.out(
      `  window: ${String(g.inputLength)} steps in, ${String(g.horizon)} out${g.columns ? `; columns ${(g.columns as string[]).join(', ')}` : ''}`,
    );
  if (g.normalizer !== undefined) {
    const n = g.normalizer as { method: string; offset: number[]; scale: number[] };
    io.out(`  normalization: ${n.method} (offset ${n.offset.map(fmt).join(', ')}; scale ${n.scale.map(fmt).join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------------

function program(io: CliIO): Command {
  const cmd = new Command('gyre')
    .description(
      'Recurrent neural networks (RNN, LSTM, GRU) from the command line: train on a text, CSV or JSON-lines file; generate, forecast, evaluate, inspect.',
    )
    .option('--threads <n>', 'native threads (default: GYRE_NUM_THREADS, else every CPU)', int(1))
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .exitOverride()
    .showHelpAfterError('(run gyre --help for usage)')
    .hook('preAction', (root) => {
      const t = root.opts().threads as number | undefined;
      if (t !== undefined) setNumThreads(t);
    });

  cmd
    .command('train')
    .description(
      'train a model on a data file and save it: .txt → text generator (one text per line), .csv → forecaster, .jsonl → text classifier, .tsv → encoder–decoder (source<TAB>target per line)',
    )
    .argument('<data>', 'data file (.txt, .csv, .jsonl)')
    .option('-o, --out <file>', 'model file to write (default: <data name>.safetensors)')
    .addOption(
      new Option('--task <task>', 'what to learn (default: from the file extension)').choices(['text', 'forecast', 'classify', 'seq2seq']),
    )
    .addOption(new Option('--cell <cell>', 'recurrent cell').choices(['lstm', 'gru', 'rnn']).default('lstm'))
    .option('--hidden <n>', 'hidden size (default: 128 text, 32 forecast, 64 classify)', int(1))
    .option('--layers <n>', 'stacked recurrent layers', int(1), 1)
    .option('--epochs <n>', 'passes over the data (default: 20, classify 10)', int(1))
    .option('--batch-size <n>', 'sequences per batch', int(1), 32)
    .option('--lr <rate>', 'Adam learning rate (default: 0.005, forecast 0.01)', positive)
    .option('--seed <n>', 'seed of weights, shuffling and sampling', int(0), 0)
    .option(
      '--validation <fraction>',
      'fraction held out to report a validation loss, stop early and keep the best epoch (default: 0.1 text and classify; 0: none)',
      fractionOrZero,
    )
    .option('--patience <n>', 'epochs without a better validation loss before stopping (0: train every epoch)', int(0), 3)
    .option(
      '--dropout <p>',
      "text and classify: dropout on the recurrent layer's input (one mask per sequence) and between stacked layers; seq2seq: on the embeddings, between encoder layers and before the output layer",
      fractionOrZero,
      0,
    )
    .option('--report <file.html>', 'write a self-contained HTML report with the training curves')
    .addOption(new Option('--tokenizer <kind>', 'text: character- or word-level').choices(['char', 'word']).default('char'))
    .option('--max-length <n>', 'text: steps per training sequence (longer texts are cut)', int(1), 64)
    .option('--samples <n>', 'text: samples to print after training', int(0), 10)
    .option('--temperature <t>', 'text: sampling temperature of the printed samples', nonNegative, 0.8)
    .option('--column <names>', 'forecast: CSV column(s) to model, comma-separated (default: the last column)', list)
    .option('--input-length <n>', 'forecast: past steps each forecast reads', int(1), 28)
    .option('--horizon <n>', 'forecast: steps predicted at once', int(1), 1)
    .option(
      '--holdout <fraction>',
      'forecast: the last fraction of the series kept out of training to report a test error',
      nonNegative,
      0.1,
    )
    .option(
      '--difference <lags>',
      'forecast: difference the series at these lags before normalizing (1: trend; a season: seasonal), comma-separated',
      lags,
    )
    .option('--period <n>', 'forecast: season length of the seasonal-naive baseline (default: detected)', int(2))
    .option('--text-field <name>', 'jsonl/csv: field with the text', 'text')
    .option('--label-field <name>', 'classify: field with the label', 'label')
    .addOption(
      new Option('--target-tokenizer <kind>', 'seq2seq: tokenizer of the targets (default: --tokenizer)').choices(['char', 'word']),
    )
    .option('--label-smoothing <eps>', 'seq2seq: label smoothing of the cross-entropy', fractionOrZero, 0)
    .option('--beam <n>', 'seq2seq: beam width of the held-out evaluation', int(1), 5)
    .option('-q, --quiet', 'no progress display')
    .action(async (data: string, flags: TrainFlags) => {
      if (flags.holdout >= 1) throw new CliError(`--holdout must be below 1, got ${flags.holdout}`);
      await train(io, data, flags);
    });

  cmd
    .command('generate')
    .description('generate text with a model made by gyre train <file.txt>')
    .argument('<model>', 'model file')
    .option('--seed-text <text>', 'text to continue (characters outside the vocabulary are read as the unknown token; see --strict)', '')
    .option('-n, --count <n>', 'how many texts', int(1), 10)
    .option('--length <n>', 'at most this many tokens each', int(1), 40)
    .option('--temperature <t>', 'sampling temperature (0 = always the most likely token)', nonNegative, 0.8)
    .option('--top-k <k>', 'sample among the k most likely tokens', int(1))
    .option('--top-p <p>', 'sample among the most likely tokens covering probability p', (v: string) => (Number(v) === 1 ? 1 : fraction(v)))
    .option('--random-seed <n>', 'seed of the sampling (the same seed gives the same texts)', int(0), 0)
    .option('--strict', 'refuse a seed text with characters outside the vocabulary')
    .action(async (path: string, flags) => generate(io, path, flags));

  cmd
    .command('forecast')
    .description('forecast the steps after a CSV series with a model made by gyre train <file.csv>')
    .argument('<model>', 'model file')
    .argument('<data>', 'CSV file whose last rows are the history')
    .option('--steps <n>', 'steps to forecast (default: the model horizon; more are forecast recursively)', int(1))
    .option('--column <names>', 'CSV column(s) (default: those the model was trained on)', list)
    .option('--json', 'print JSON')
    .action(async (path: string, data: string, flags) => forecast(io, path, data, flags));

  cmd
    .command('eval')
    .description('evaluate a model made by gyre train on a data file of the same kind')
    .argument('<model>', 'model file')
    .argument('<data>', 'data file')
    .option('--column <names>', 'forecast: CSV column(s)', list)
    .option('--text-field <name>', 'jsonl/csv: field with the text', 'text')
    .option('--label-field <name>', 'classify: field with the label', 'label')
    .option('--max-length <n>', 'text: steps per sequence', int(1), 64)
    .option('--beam <n>', 'seq2seq: beam width', int(1), 5)
    .action(async (path: string, data: string, flags) => evaluate(io, path, data, flags));

  cmd
    .command('transduce')
    .description('turn texts into their targets with an encoder–decoder made by gyre train <pairs.tsv>')
    .argument('<model>', 'model file')
    .argument('<texts...>', 'source texts')
    .option('--beam <n>', 'beam width (1: greedy)', int(1), 5)
    .option('--n-best <n>', 'outputs per text, best first, with their scores', int(1), 1)
    .option('--length-penalty <alpha>', 'Wu et al. length penalty α', nonNegative, 0)
    .option('--ensemble <models...>', 'other model files that decode with this one (the mean of their log-probabilities)')
    .option('--json', 'print JSON')
    .action(async (path: string, texts: string[], flags) => transduce(io, path, texts, flags));

  cmd
    .command('info')
    .description('describe a model file: task, layers, parameters, tokenizer, normalization')
    .argument('<model>', 'model file')
    .option('--json', 'print JSON')
    .action(async (path: string, flags) => info(io, path, flags));

  return cmd;
}

/**
 * Runs the command line with `argv` (without `node` and the script) and returns the exit code:
 * 0 on success, 1 on any error (reported as one `gyre: error: ...` line on stderr).
 */
export async function main(argv: string[], io: CliIO = defaultIO()): Promise<number> {
  try {
    await program(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      // commander printed its own message (usage errors) or the help/version text.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help'
        ? 0
        : (e.exitCode ?? 1) || 1;
    }
    if (err instanceof CliError || err instanceof GyreError || err instanceof InvalidArgumentError) {
      io.err(`gyre: error: ${(err as Error).message}`);
      return 1;
    }
    io.err(
      `gyre: internal error: ${err instanceof Error ? err.message : String(err)}${process.env.GYRE_DEBUG ? `\n${(err as Error).stack}` : ' (set GYRE_DEBUG=1 for details)'}`,
    );
    return 1;
  }
}

/** Entry point of the `gyre` executable. */
export function run(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    () => {
      process.exitCode = 1;
    },
  );
}
