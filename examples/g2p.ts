/**
 * Grapheme-to-phoneme conversion on CMUdict with the `Seq2Seq` toolkit: letters in, ARPAbet
 * phonemes out, scored by word error rate (a word is wrong when its output is none of its
 * pronunciations) and phoneme error rate (edit distance to the closest pronunciation over that
 * pronunciation's phonemes), the measures and protocol of the published results.
 *
 * The dictionary comes from the `cmu-pronouncing-dictionary` npm package (ISC licence; a
 * development dependency of gyre's repository, used for nothing else, and not shipped): 135,155
 * entries, a word's other pronunciations under `word(2)`, `word(3)`, …. Words of letters and
 * apostrophes are kept (124,920 words, 133,659 pronunciations once variants differing only in stress are merged; 8,113 words have more than one); stress digits are dropped (39
 * phonemes), as the published results drop them; comments after `#` in a few entries are not
 * phonemes. Words are split 90/10 at random (seeded), each with all its pronunciations: training
 * reads every (word, pronunciation) pair of the training words (a twentieth of them held out for
 * validation: learning-rate halving, early stopping, best epoch kept), and a test word's output
 * is scored against all of its pronunciations.
 *
 * The model: a bidirectional LSTM encoder over the letters (character tokenizer), an LSTM decoder
 * started from the encoder's two final states side by side, Luong's general attention with input
 * feeding, label smoothing 0.1, dropout (0.2 by default), Adam; decoded greedily and by beam
 * search.
 *
 * Run: `npm run build && node dist/examples/g2p.js [words] [epochs] [hidden] [beam] [dropout] [layers] [checkpoint] [seed]`
 * (`words`: how many dictionary words, `all` for every one; default 20000 words, 10 epochs,
 * hidden 128, beam 5, dropout 0.2, 1 encoder layer, seed 1: another seed trains another model of
 * the same split, for an ensemble). With a `checkpoint` file, the model is
 * written there after every epoch, and a run started again with the same arguments resumes from
 * it (to the weights an uninterrupted run reaches): a long run can be stopped and taken up later.
 * `node dist/examples/g2p.js score <words|all> <beam> model.safetensors [more.safetensors …]`
 * scores saved models on the same split's test words: one alone, several as an ensemble.
 * The README gives the figures of a run on every word.
 */
import { existsSync } from 'node:fs';
import { editDistance, Seq2Seq, type Seq2SeqEpoch, type TextPair, WordTokenizer, seededRandom } from 'gyre';

/** A dictionary word and its pronunciations (phonemes without stress, space-separated), the first as listed first. */
export interface G2pEntry {
  word: string;
  pronunciations: string[];
}

/** The dictionary's words of letters and apostrophes with all their pronunciations, in the package's order. */
export async function cmudictEntries(): Promise<G2pEntry[]> {
  const { dictionary } = await import('cmu-pronouncing-dictionary');
  const byWord = new Map<string, string[]>();
  for (const [key, pronunciation] of Object.entries(dictionary)) {
    const word = key.replace(/\(\d+\)$/, '');
    if (!/^[a-z']+$/.test(word)) continue;
    const phones = (pronunciation.split('#')[0] ?? '')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((p) => p.replace(/\d+$/, ''))
      .join(' ');
    if (phones.length === 0) continue;
    const list = byWord.get(word) ?? [];
    // Variants that differ only in stress are one pronunciation here.
    if (!list.includes(phones)) list.push(phones);
    byWord.set(word, list);
  }
  return [...byWord].map(([word, pronunciations]) => ({ word, pronunciations }));
}

/** Every (word, pronunciation) pair of `entries`. */
export function pairsOf(entries: readonly G2pEntry[]): TextPair[] {
  return entries.flatMap((e) => e.pronunciations.map((p) => [e.word, p] as const));
}

/** `entries` in a seeded random order, cut to `limit` words (if given), split 90/10 into training and test words. */
export function split(entries: readonly G2pEntry[], limit: number | undefined, seed = 7): { train: G2pEntry[]; test: G2pEntry[] } {
  const order = entries.map((_, i) => i);
  const random = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const chosen = order.slice(0, limit ?? order.length).map((i) => entries[i]!);
  const cut = Math.floor(chosen.length * 0.9);
  return { train: chosen.slice(0, cut), test: chosen.slice(cut) };
}

/** Word and phoneme error rates of `outputs` against each entry's pronunciations (the closest one for phonemes). */
export function scoreOutputs(test: readonly G2pEntry[], outputs: readonly string[]): { wer: number; per: number } {
  let wrong = 0;
  let edits = 0;
  let phonemes = 0;
  test.forEach((e, i) => {
    const out = (outputs[i] ?? '').split(' ').filter(Boolean);
    let best = Number.POSITIVE_INFINITY;
    let length = 0;
    for (const p of e.pronunciations) {
      const ref = p.split(' ');
      const d = editDistance(out, ref);
      if (d < best || (d === best && ref.length > length)) {
        best = d;
        length = ref.length;
      }
    }
    if (best > 0) wrong++;
    edits += best;
    phonemes += length;
  });
  return { wer: wrong / test.length, per: edits / phonemes };
}

/** Options of {@link runG2p}. */
export interface G2pOptions {
  /** Dictionary words used (all when undefined). */
  words?: number;
  epochs: number;
  hiddenSize: number;
  beamWidth: number;
  /** Dropout in training (default 0). */
  dropout?: number;
  /** Stacked encoder layers (default 1). */
  numLayers?: number;
  /** A file written after every epoch, and resumed from when it exists. */
  checkpoint?: string;
  /**
   * Seed of the weights' initialization, the validation words and each epoch's order (default 1);
   * the training and test words do not depend on it. Runs with other seeds are independently
   * trained models of the same split, for an ensemble.
   */
  seed?: number;
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/** What {@link runG2p} measured on the test words. */
export interface G2pResult {
  trainWords: number;
  /** Training pairs: every pronunciation of every training word. */
  trainPairs: number;
  testWords: number;
  epochs: number;
  trainSeconds: number;
  greedy: { wer: number; per: number };
  beam: { wer: number; per: number };
  examples: { word: string; output: string; reference: string }[];
  model: Seq2Seq;
}

/** Whether a history ends in `patience` epochs without a better validation loss (training stopped there). */
function stopped(history: readonly Seq2SeqEpoch[], patience: number): boolean {
  let best = Number.POSITIVE_INFINITY;
  let bad = 0;
  for (const e of history) {
    if (e.validationLoss === undefined) continue;
    if (e.validationLoss < best) {
      best = e.validationLoss;
      bad = 0;
    } else bad++;
  }
  return bad >= patience;
}

/** Trains on the training words and scores the test words greedily and with the beam. */
export async function runG2p(o: G2pOptions): Promise<G2pResult> {
  const log = o.log ?? (() => {});
  const { train: trainWords, test } = split(await cmudictEntries(), o.words);
  const train = pairsOf(trainWords);
  log(
    `${trainWords.length + test.length} words (${trainWords.length} to train, ${train.length} pronunciations; ${test.length} to test); hidden ${o.hiddenSize} per encoder direction`,
  );
  const fit = {
    epochs: o.epochs,
    batchSize: 64,
    labelSmoothing: 0.1,
    dropout: o.dropout ?? 0,
    validation: 0.05,
    patience: 3,
    seed: o.seed ?? 1,
    checkpoint: o.checkpoint,
    onEpoch: (e: Seq2SeqEpoch) =>
      log(
        `epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, validation ${e.validationLoss?.toFixed(4)}, learning rate ${e.learningRate} (${e.seconds.toFixed(0)} s)`,
      ),
  };
  const started = performance.now();
  let model: Seq2Seq;
  let earlier = 0;
  if (o.checkpoint !== undefined && existsSync(o.checkpoint)) {
    model = await Seq2Seq.load(o.checkpoint);
    earlier = model.history.reduce((t, e) => t + e.seconds, 0);
    log(`resuming from ${o.checkpoint} after epoch ${model.history.length} (${earlier.toFixed(0)} s of training so far)`);
    const left = o.epochs - model.history.length;
    if (left > 0 && !stopped(model.history, fit.patience)) await model.fit(train, { ...fit, epochs: left });
  } else {
    model = await Seq2Seq.train(train, {
      ...fit,
      sourceTokenizer: 'char',
      targetTokenizer: WordTokenizer.fromCorpus(
        train.map((p) => p[1]),
        { lowercase: false },
      ),
      hiddenSize: o.hiddenSize,
      numLayers: o.numLayers ?? 1,
      embeddingDim: 64,
      learningRate: 0.002,
    });
  }
  // Training time over every run that trained the model (validation not included when resumed).
  const trainSeconds = earlier + (performance.now() - started) / 1000;
  const rates = async (beamWidth: number) => {
    const outs = await model.transduce(
      test.map((e) => e.word),
      { beamWidth },
    );
    return scoreOutputs(
      test,
      outs.map((r) => r.text),
    );
  };
  const greedy = await rates(1);
  const beam = await rates(o.beamWidth);
  const shown = test.slice(0, 5);
  const outs = await model.transduce(
    shown.map((e) => e.word),
    { beamWidth: o.beamWidth },
  );
  return {
    trainWords: trainWords.length,
    trainPairs: train.length,
    testWords: test.length,
    epochs: model.history.length,
    trainSeconds,
    greedy,
    beam,
    examples: shown.map((e, i) => ({ word: e.word, output: outs[i]!.text, reference: e.pronunciations.join(' | ') })),
    model,
  };
}

/**
 * Word and phoneme error rates of saved models on the test words of the split of `words`
 * dictionary words (all when undefined): the first model alone, or with the others as an
 * ensemble (`transduce`'s `ensemble`: the mean of the models' log-probabilities).
 */
export async function scoreModels(
  files: readonly string[],
  words: number | undefined,
  beamWidth: number,
): Promise<{ testWords: number; wer: number; per: number; seconds: number }> {
  const [first, ...others] = await Promise.all(files.map((f) => Seq2Seq.load(f)));
  if (first === undefined) throw new Error('score needs at least one model file');
  const { test } = split(await cmudictEntries(), words);
  const started = performance.now();
  const outs = await first.transduce(
    test.map((e) => e.word),
    { beamWidth, ...(others.length > 0 ? { ensemble: others } : {}) },
  );
  const seconds = (performance.now() - started) / 1000;
  for (const m of [first, ...others]) m.dispose();
  return {
    testWords: test.length,
    ...scoreOutputs(
      test,
      outs.map((r) => r.text),
    ),
    seconds,
  };
}

async function main(): Promise<void> {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  if (process.argv[2] === 'score') {
    // node dist/examples/g2p.js score <words|all> <beam> model.safetensors [more.safetensors …]
    const [, words = 'all', beam = '5', ...files] = process.argv.slice(2);
    const r = await scoreModels(files, words === 'all' ? undefined : Number(words), Number(beam));
    const what = files.length > 1 ? `an ensemble of ${files.length} models` : files[0];
    console.log(
      `${what}, ${r.testWords} test words, beam ${beam}: word error rate ${pct(r.wer)}, phoneme error rate ${pct(r.per)} (${r.seconds.toFixed(0)} s)`,
    );
    return;
  }
  const [words = '20000', epochs = '10', hidden = '128', beam = '5', dropout = '0.2', layers = '1', checkpoint, seed = '1'] =
    process.argv.slice(2);
  const r = await runG2p({
    words: words === 'all' ? undefined : Number(words),
    epochs: Number(epochs),
    hiddenSize: Number(hidden),
    beamWidth: Number(beam),
    dropout: Number(dropout),
    numLayers: Number(layers),
    checkpoint,
    seed: Number(seed),
    log: (l) => console.log(l),
  });
  console.log(`trained ${r.epochs} epochs in ${r.trainSeconds.toFixed(0)} s on ${r.trainWords} words (${r.trainPairs} pronunciations)`);
  console.log(`${r.testWords} test words, greedy: word error rate ${pct(r.greedy.wer)}, phoneme error rate ${pct(r.greedy.per)}`);
  console.log(`${r.testWords} test words, beam ${beam}: word error rate ${pct(r.beam.wer)}, phoneme error rate ${pct(r.beam.per)}`);
  for (const e of r.examples) {
    console.log(`  ${e.word}: ${e.output}${e.reference.split(' | ').includes(e.output) ? '' : ` (reference ${e.reference})`}`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
