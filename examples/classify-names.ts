/**
 * A sequence classifier: does an English first name belong to the female or the male list
 * (examples/data/female-names.txt and male-names.txt, public domain)? Names on both lists are
 * left out. A character-level GRU reads each name and its final state is classified; accuracy
 * on a held-out fifth is compared with always answering the larger class.
 *
 * Run: `npm run build && node dist/examples/classify-names.js [epochs]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom, TextClassifier } from 'gyre';

function list(file: string): string[] {
  return readFileSync(join(__dirname, '..', '..', 'examples', 'data', file), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
}

/** The labelled names in a fixed shuffled order. */
export function labelledNames(): { texts: string[]; labels: string[] } {
  const female = new Set(list('female-names.txt'));
  const male = new Set(list('male-names.txt'));
  const rows = [
    ...[...female].filter((n) => !male.has(n)).map((n) => [n, 'female'] as const),
    ...[...male].filter((n) => !female.has(n)).map((n) => [n, 'male'] as const),
  ];
  // A fixed pseudo-random order (the lists are sorted and grouped by class): a seeded Fisher–Yates shuffle.
  const random = seededRandom(1);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return { texts: rows.map((r) => r[0]), labels: rows.map((r) => r[1]) };
}

/** Trains on four fifths of the names; returns held-out accuracy and the majority baseline. */
export async function classifyNames(
  options: { epochs?: number; seed?: number } = {},
): Promise<{ accuracy: number; baseline: number; examples: string[] }> {
  const { texts, labels } = labelledNames();
  const cut = Math.floor(texts.length * 0.8);
  const classifier = await TextClassifier.train(texts.slice(0, cut), labels.slice(0, cut), {
    cell: 'gru',
    hiddenSize: 64,
    epochs: options.epochs ?? 8,
    learningRate: 0.005,
    seed: options.seed ?? 0,
  });
  const testLabels = labels.slice(cut);
  const e = classifier.evaluate(texts.slice(cut), testLabels);
  const female = testLabels.filter((l) => l === 'female').length / testLabels.length;
  const examples = classifier
    .classify(['Olivia', 'Liam', 'Sophia', 'Noah', 'Gwendolyn', 'Bartholomew'])
    .map(
      (c, i) =>
        `${['Olivia', 'Liam', 'Sophia', 'Noah', 'Gwendolyn', 'Bartholomew'][i]} → ${String(c.label)} (${(Math.max(...c.probabilities) * 100).toFixed(0)}%)`,
    );
  return { accuracy: e.accuracy, baseline: Math.max(female, 1 - female), examples };
}

async function main(): Promise<void> {
  const r = await classifyNames({ epochs: Number(process.argv[2] ?? 8) });
  console.log(`held-out accuracy ${(r.accuracy * 100).toFixed(1)}% (always the larger class: ${(r.baseline * 100).toFixed(1)}%)`);
  for (const line of r.examples) console.log(`  ${line}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
