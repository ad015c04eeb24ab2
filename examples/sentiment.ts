/**
 * A text classifier on a real labelled corpus: UCI's "Sentiment Labelled Sentences" (Kotzias et
 * al., KDD 2015): 1,000 review sentences each from IMDb, Amazon and Yelp, half positive and half
 * negative, as the `sentiment` npm package ships them (`test/fixtures/*.json`, MIT licence; the
 * package is a development dependency of gyre's repository, used for nothing else).
 *
 * Two tasks on the same sentences, each held out on a fixed fifth:
 * - sentiment: positive or negative (balanced classes);
 * - source: a movie review (IMDb) or not (Amazon, Yelp): one class twice the other, trained with
 *   and without `classWeight: 'balanced'`, which trades the larger class's recall for the
 *   smaller one's.
 * The model is a word-level GRU (`TextClassifier`, `tokenizer`: words seen twice in the training
 * sentences) with dropout on its input and on its recurrent state, early stopping on a tenth of
 * the training sentences. Beside it, a bag-of-words logistic regression trained here (the same
 * vocabulary, the same class weights, stochastic gradient descent with L2) as the baseline; both
 * are scored by precision, recall and F1 per class on the held-out sentences.
 *
 * Run: `npm run build && node dist/examples/sentiment.js [epochs] [seeds]` (`seeds` > 1 also
 * trains the sentiment GRU with seeds 1.. and prints each one's accuracy and the mean).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { seededRandom, type TextClassifierOptions, TextClassifier, type Tokenizer, WordTokenizer } from 'gyre';

/** One labelled sentence of the corpus. */
export interface Review {
  text: string;
  /** 1 positive, 0 negative. */
  positive: number;
  source: 'imdb' | 'amazon' | 'yelp';
}

/** The 3,000 sentences (3 × 1,000; the files' one trailing duplicate each left out) in a fixed shuffled order. */
export function readReviews(): Review[] {
  const dir = join(dirname(require.resolve('sentiment/package.json')), 'test', 'fixtures');
  const rows: Review[] = [];
  for (const source of ['imdb', 'amazon', 'yelp'] as const) {
    const items = JSON.parse(readFileSync(join(dir, `${source}.json`), 'utf8')) as { text: string; class: number }[];
    const seen = new Set<string>();
    for (const { text, class: positive } of items) {
      const t = text.trim();
      if (t.length === 0 || seen.has(t)) continue;
      seen.add(t);
      rows.push({ text: t, positive, source });
    }
  }
  // A seeded Fisher–Yates shuffle: the files are grouped by source.
  const random = seededRandom(7);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return rows;
}

/** Precision, recall and F1 of one class on held-out sentences. */
export interface ClassScore {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Held-out scores of one model. */
export interface Scores {
  accuracy: number;
  macroF1: number;
  perLabel: ClassScore[];
}

/** Scores of `predicted` against `gold`, per label of `labels`. */
export function score(labels: readonly string[], gold: readonly string[], predicted: readonly string[]): Scores {
  const perLabel = labels.map((label) => {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    gold.forEach((g, i) => {
      const p = predicted[i];
      if (p === label && g === label) tp++;
      else if (p === label) fp++;
      else if (g === label) fn++;
    });
    const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
    const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { label, precision, recall, f1, support: tp + fn };
  });
  const accuracy = gold.filter((g, i) => predicted[i] === g).length / gold.length;
  return { accuracy, macroF1: perLabel.reduce((s, c) => s + c.f1, 0) / perLabel.length, perLabel };
}

/**
 * A multinomial logistic regression on binary bag-of-words features (the token ids of each
 * text, the unknown id left out): per-sentence SGD on the class-weighted cross-entropy with L2.
 */
export function logisticRegression(
  tokenizer: Tokenizer,
  texts: readonly string[],
  y: readonly number[],
  classes: number,
  options: { epochs?: number; learningRate?: number; l2?: number; classWeight?: readonly number[]; seed?: number } = {},
): (text: string) => number {
  const { epochs = 20, learningRate = 0.05, l2 = 1e-4, classWeight, seed = 0 } = options;
  const features = (t: string) => [...new Set(tokenizer.encode(t, { unknown: 'skip' }))];
  const rows = texts.map(features);
  const w = Array.from({ length: classes }, () => new Float64Array(tokenizer.vocabSize));
  const b = new Float64Array(classes);
  const logits = (f: number[]) => Array.from({ length: classes }, (_, k) => f.reduce((s, j) => s + w[k]![j]!, b[k]!));
  const random = seededRandom(seed);
  const order = rows.map((_, i) => i);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order) {
      const f = rows[i]!;
      const z = logits(f);
      const top = Math.max(...z);
      const e = z.map((v) => Math.exp(v - top));
      const sum = e.reduce((s, v) => s + v, 0);
      const scale = classWeight?.[y[i]!] ?? 1;
      for (let k = 0; k < classes; k++) {
        const g = scale * (e[k]! / sum - (k === y[i] ? 1 : 0));
        b[k] = b[k]! - learningRate * g;
        for (const j of f) w[k]![j] = w[k]![j]! - learningRate * (g + l2 * w[k]![j]!);
      }
    }
  }
  return (text: string) => {
    const z = logits(features(text));
    return z.indexOf(Math.max(...z));
  };
}

/** Both models on one task: the GRU's and the baseline's held-out scores. */
export interface TaskResult {
  labels: string[];
  gru: Scores;
  baseline: Scores;
  /** The weights of the labels in training, in `labels` order (1 each without class weights). */
  classWeight: number[];
  /** Epochs trained, and the one kept (early stopping). */
  epochs: { ran: number; kept: number };
}

/** Trains the GRU and the baseline on the first four fifths of `texts` and scores them on the rest. */
export async function runTask(
  texts: readonly string[],
  labels: readonly string[],
  options: { epochs?: number; balanced?: boolean; seed?: number; model?: Partial<TextClassifierOptions>; minCount?: number } = {},
): Promise<TaskResult> {
  const cut = Math.floor(texts.length * 0.8);
  const [train, test] = [texts.slice(0, cut), texts.slice(cut)];
  const [trainLabels, testLabels] = [labels.slice(0, cut), labels.slice(cut)];
  const names = [...new Set(labels)].sort();
  const counts = names.map((n) => trainLabels.filter((l) => l === n).length);
  // scikit-learn's 'balanced': n / (K · n_k), as TextClassifier computes it.
  const classWeight = options.balanced ? counts.map((c) => train.length / (names.length * c)) : names.map(() => 1);
  const tokenizer = WordTokenizer.fromCorpus(train, { minCount: options.minCount ?? 2 });
  const gruOptions: TextClassifierOptions = {
    tokenizer,
    cell: 'gru',
    hiddenSize: 64,
    embeddingDim: 64,
    dropout: 0.5,
    recurrentDropout: 0.3,
    epochs: options.epochs ?? 30,
    batchSize: 32,
    learningRate: 0.005,
    validationSplit: 0.1,
    earlyStopping: { patience: 5, restoreBest: true },
    seed: options.seed ?? 0,
    ...(options.balanced ? { classWeight: 'balanced' as const } : {}),
    ...options.model,
  };
  const classifier = await TextClassifier.train([...train], [...trainLabels], gruOptions);
  const predicted = classifier.classify([...test]).map((c) => String(c.label));
  const lr = logisticRegression(
    tokenizer,
    train,
    trainLabels.map((l) => names.indexOf(l)),
    names.length,
    { classWeight, seed: options.seed ?? 0 },
  );
  const history = classifier.history!;
  const losses = history.epochs.map((e) => e.valLoss ?? Number.POSITIVE_INFINITY);
  return {
    labels: names,
    gru: score(names, testLabels, predicted),
    baseline: score(
      names,
      testLabels,
      test.map((t) => names[lr(t)]!),
    ),
    classWeight,
    epochs: { ran: history.epochs.length, kept: losses.indexOf(Math.min(...losses)) + 1 },
  };
}

function table(title: string, r: TaskResult): string {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const lines = [
    `${title} (kept epoch ${r.epochs.kept} of ${r.epochs.ran}; class weights ${r.classWeight.map((w) => w.toFixed(2)).join(' / ')})`,
  ];
  lines.push('  label         model      precision  recall   F1       support');
  for (const [name, s] of [
    ['GRU', r.gru],
    ['bag-of-words', r.baseline],
  ] as const) {
    for (const c of s.perLabel) {
      lines.push(
        `  ${c.label.padEnd(13)} ${name.padEnd(12)} ${pct(c.precision).padStart(7)}  ${pct(c.recall).padStart(7)}  ${pct(c.f1).padStart(6)}  ${String(c.support).padStart(5)}`,
      );
    }
    lines.push(`  ${'(macro)'.padEnd(13)} ${name.padEnd(12)} accuracy ${pct(s.accuracy)}, macro F1 ${pct(s.macroF1)}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const epochs = Number(process.argv[2] ?? 30);
  const seeds = Number(process.argv[3] ?? 1);
  const reviews = readReviews();
  const texts = reviews.map((r) => r.text);
  const polarity = reviews.map((r) => (r.positive === 1 ? 'positive' : 'negative'));
  const sentiment = await runTask(texts, polarity, { epochs, balanced: true });
  console.log(table('Sentiment, 600 held-out sentences', sentiment));
  if (seeds > 1) {
    const accuracies = [sentiment.gru.accuracy];
    for (let seed = 1; seed < seeds; seed++)
      accuracies.push((await runTask(texts, polarity, { epochs, balanced: true, seed })).gru.accuracy);
    const mean = accuracies.reduce((a, b) => a + b, 0) / seeds;
    console.log(
      `  GRU accuracy over seeds 0..${seeds - 1}: ${accuracies.map((a) => (a * 100).toFixed(1)).join(', ')}; mean ${(mean * 100).toFixed(1)}%`,
    );
  }
  const source = reviews.map((r) => (r.source === 'imdb' ? 'movie' : 'product/food'));
  for (const balanced of [false, true]) {
    const r = await runTask(texts, source, { epochs, balanced });
    console.log(table(`\nMovie review or not, ${balanced ? "classWeight 'balanced'" : 'no class weights'}`, r));
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
