/**
 * A character-level name generator, trained on the bundled list of 8,422 English first names
 * (examples/data/names.txt, public domain), with the library API: `TextGenerator.train` builds
 * a character tokenizer and an embedding → LSTM → dense model, trains it with cross-entropy and
 * Adam off the event loop, and generates names from a seed text with temperature sampling.
 * (`npm run demo` does the same job with the `gyre` command line.)
 *
 * Run: `npm run build && node dist/examples/names.js [epochs]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type EpochProgressEvent, seededRandom, TextGenerator } from 'gyre';

/** Options of {@link trainNames}. */
export interface NamesOptions {
  /** Passes over the names. Default 15. */
  epochs?: number;
  /** Hidden size of the LSTM. Default 128. */
  hiddenSize?: number;
  /** Use only the first this many names (after a fixed shuffle). Default all. */
  limit?: number;
  /** Called after every epoch. */
  onEpoch?: (e: EpochProgressEvent) => void;
}

/** The bundled names, one per line. */
export function readNames(): string[] {
  const file = join(__dirname, '..', '..', 'examples', 'data', 'names.txt');
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
}

/** Trains the generator; returns it with its per-epoch losses. */
export async function trainNames(options: NamesOptions = {}): Promise<{ generator: TextGenerator; losses: number[] }> {
  // The file is sorted; a fixed (seeded Fisher–Yates) shuffle gives every batch a mix of letters.
  const names = readNames();
  const random = seededRandom(1);
  for (let i = names.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [names[i], names[j]] = [names[j]!, names[i]!];
  }
  names.splice(options.limit ?? names.length);
  const losses: number[] = [];
  const generator = await TextGenerator.train(names, {
    epochs: options.epochs ?? 15,
    hiddenSize: options.hiddenSize ?? 128,
    learningRate: 0.005,
    batchSize: 32,
    onProgress: (e) => {
      if (e.kind !== 'epoch') return;
      losses.push(e.loss);
      options.onEpoch?.(e);
    },
  });
  return { generator, losses };
}

async function main(): Promise<void> {
  const epochs = Number(process.argv[2] ?? 15);
  const started = Date.now();
  const { generator } = await trainNames({
    epochs,
    onEpoch: (e) =>
      console.log(
        `epoch ${e.epoch}/${epochs}  loss ${e.loss.toFixed(3)}  accuracy ${e.accuracy?.toFixed(3)}  ${Math.round(e.samplesPerSecond)} names/s`,
      ),
  });
  console.log(`trained in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await generator.save('names.safetensors');
  for (const seed of ['', '', '', 'Ma', 'Jo', 'El']) {
    console.log(' ', generator.generate({ seed, temperature: 0.8, randomSeed: Math.floor(Math.random() * 1e6), maxLength: 20 }).trim());
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
