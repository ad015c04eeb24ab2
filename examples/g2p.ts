/**
 * Grapheme-to-phoneme conversion on CMUdict with the `Seq2Seq` toolkit: letters in, ARPAbet
 * phonemes out, scored by word error rate (a word is wrong when any phoneme is) and phoneme error
 * rate (edit distance over the reference's phonemes), the measures of the published results.
 *
 * The dictionary comes from the `cmu-pronouncing-dictionary` npm package (ISC licence; a
 * development dependency of gyre's repository, used for nothing else, and not shipped): 135,155
 * entries with one pronunciation each (the package keeps one, so words are scored against that
 * one). Entries of letters and apostrophes only are kept (124,920 words); stress digits are
 * dropped (39 phonemes), as the published results drop them; comments after `#` in a few
 * entries are not phonemes. Words are split 90/10 at random (seeded); a twentieth of the training
 * words is held out for validation (learning-rate halving, early stopping, best epoch kept).
 *
 * The model: a bidirectional LSTM encoder over the letters (character tokenizer), an LSTM decoder
 * started from the encoder's two final states side by side, Luong's general attention with input
 * feeding, label smoothing 0.1, dropout (0.2 by default), Adam; decoded greedily and by beam
 * search.
 *
 * Run: `npm run build && node dist/examples/g2p.js [words] [epochs] [hidden] [beam] [dropout]`
 * (`words`: how many dictionary words, `all` for every one; default 20000 words, 10 epochs,
 * hidden 128, beam 5, dropout 0.2). The README gives the figures of a run on every word.
 */
import { Seq2Seq, type TextPair, WordTokenizer, seededRandom } from 'gyre';

/** The dictionary as (word, phonemes without stress) pairs, words of letters and apostrophes only, in the package's order. */
export async function cmudictPairs(): Promise<TextPair[]> {
  const { dictionary } = await import('cmu-pronouncing-dictionary');
  const pairs: TextPair[] = [];
  for (const [word, pronunciation] of Object.entries(dictionary)) {
    if (!/^[a-z']+$/.test(word)) continue;
    const phones = (pronunciation.split('#')[0] ?? '')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((p) => p.replace(/\d+$/, ''));
    if (phones.length > 0) pairs.push([word, phones.join(' ')]);
  }
  return pairs;
}

/** `pairs` in a seeded random order, cut to `limit` (if given), split 90/10 into training and test words. */
export function split(pairs: readonly TextPair[], limit: number | undefined, seed = 7): { train: TextPair[]; test: TextPair[] } {
  const order = pairs.map((_, i) => i);
  const random = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const chosen = order.slice(0, limit ?? order.length).map((i) => pairs[i]!);
  const cut = Math.floor(chosen.length * 0.9);
  return { train: chosen.slice(0, cut), test: chosen.slice(cut) };
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
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/** What {@link runG2p} measured on the test words. */
export interface G2pResult {
  trainWords: number;
  testWords: number;
  epochs: number;
  trainSeconds: number;
  greedy: { wer: number; per: number };
  beam: { wer: number; per: number };
  examples: { word: string; output: string; reference: string }[];
  model: Seq2Seq;
}

/** Trains on the training words and scores the test words greedily and with the beam. */
export async function runG2p(o: G2pOptions): Promise<G2pResult> {
  const log = o.log ?? (() => {});
  const { train, test } = split(await cmudictPairs(), o.words);
  log(
    `${train.length + test.length} words (${train.length} to train, ${test.length} to test); hidden ${o.hiddenSize} per encoder direction`,
  );
  const started = performance.now();
  const model = await Seq2Seq.train(train, {
    sourceTokenizer: 'char',
    targetTokenizer: WordTokenizer.fromCorpus(
      train.map((p) => p[1]),
      { lowercase: false },
    ),
    hiddenSize: o.hiddenSize,
    embeddingDim: 64,
    epochs: o.epochs,
    batchSize: 64,
    learningRate: 0.002,
    labelSmoothing: 0.1,
    dropout: o.dropout ?? 0,
    validation: 0.05,
    patience: 3,
    seed: 1,
    onEpoch: (e) =>
      log(
        `epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, validation ${e.validationLoss?.toFixed(4)}, learning rate ${e.learningRate} (${e.seconds.toFixed(0)} s)`,
      ),
  });
  const trainSeconds = (performance.now() - started) / 1000;
  const rates = async (beamWidth: number) => {
    const e = await model.evaluate(test, { beamWidth });
    return { wer: 1 - e.exactMatch, per: e.tokenErrorRate };
  };
  const greedy = await rates(1);
  const beam = await rates(o.beamWidth);
  const shown = test.slice(0, 5);
  const outs = await model.transduce(
    shown.map((p) => p[0]),
    { beamWidth: o.beamWidth },
  );
  return {
    trainWords: train.length,
    testWords: test.length,
    epochs: model.history.length,
    trainSeconds,
    greedy,
    beam,
    examples: shown.map((p, i) => ({ word: p[0], output: outs[i]!.text, reference: p[1] })),
    model,
  };
}

async function main(): Promise<void> {
  const [words = '20000', epochs = '10', hidden = '128', beam = '5', dropout = '0.2'] = process.argv.slice(2);
  const r = await runG2p({
    words: words === 'all' ? undefined : Number(words),
    epochs: Number(epochs),
    hiddenSize: Number(hidden),
    beamWidth: Number(beam),
    dropout: Number(dropout),
    log: (l) => console.log(l),
  });
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  console.log(`trained ${r.epochs} epochs in ${r.trainSeconds.toFixed(0)} s on ${r.trainWords} words`);
  console.log(`${r.testWords} test words, greedy: word error rate ${pct(r.greedy.wer)}, phoneme error rate ${pct(r.greedy.per)}`);
  console.log(`${r.testWords} test words, beam ${beam}: word error rate ${pct(r.beam.wer)}, phoneme error rate ${pct(r.beam.per)}`);
  for (const e of r.examples) console.log(`  ${e.word}: ${e.output}${e.output === e.reference ? '' : ` (reference ${e.reference})`}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
