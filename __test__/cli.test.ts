/**
 * The `gyre` program end to end, run as users run it (`node bin/gyre.js ...` in a child
 * process) on tiny corpora: train, generate, forecast, eval, info, the HTML report, and the bad
 * input that must end in one clear line and exit code 1, never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const BIN = resolve(__dirname, '..', 'bin', 'gyre.js');
const dir = mkdtempSync(join(tmpdir(), 'gyre-cli-'));
const at = (f: string) => join(dir, f);

function gyre(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, GYRE_NUM_THREADS: '2' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A failure the user caused: exit code 1, a one-line message, no stack trace. */
function expectCleanFailure(r: { code: number; stdout: string; stderr: string }, message: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toMatch(/internal error/);
}

const NAMES = ['anna', 'bella', 'carla', 'dora', 'emma', 'frida', 'greta', 'hanna', 'ida', 'julia'];

beforeAll(() => {
  writeFileSync(at('names.txt'), `${Array.from({ length: 8 }, () => NAMES.join('\n')).join('\n')}\n`);
  const rows = Array.from({ length: 160 }, (_, t) => `${t},${(Math.sin(t / 4) * 10 + 50).toFixed(3)}`);
  writeFileSync(at('wave.csv'), `t,value\n${rows.join('\n')}\n`);
  const labelled = Array.from({ length: 60 }, (_, i) =>
    JSON.stringify(i % 2 ? { text: 'a'.repeat(2 + (i % 5)), label: 'as' } : { text: 'b'.repeat(2 + (i % 5)), label: 'bs' }),
  );
  writeFileSync(at('ab.jsonl'), `${labelled.join('\n')}\n`);
});

describe('gyre train / generate / eval / info on a text corpus', () => {
  beforeAll(() => {
    const r = gyre(
      'train',
      'names.txt',
      '--out',
      'names.safetensors',
      '--epochs',
      '30',
      '--hidden',
      '32',
      '--lr',
      '0.02',
      '--samples',
      '3',
      '--report',
      'report.html',
      '--seed',
      '1',
      // A memorisation test: every name trains, every epoch runs.
      '--validation',
      '0',
    );
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    (globalThis as { trainOut?: string }).trainOut = r.stdout + r.stderr;
  });

  it('trains, shows progress and the loss curve, saves the model and prints samples', () => {
    const out = (globalThis as { trainOut?: string }).trainOut!;
    expect(out).toMatch(/epoch 30\/30 \| loss [\d.]+ \| accuracy [\d.]+ \| \d+ samples\/s \| ETA/);
    expect(out).toMatch(/training loss over \d+ batches/);
    expect(out).toMatch(/model saved to names\.safetensors/);
    expect(out).toMatch(/samples \(temperature 0\.8\):\n( {2}\S+\n){3}/);
    expect(existsSync(at('names.safetensors'))).toBe(true);
  });

  it('writes a self-contained HTML report with the training curves', () => {
    const html = readFileSync(at('report.html'), 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toMatch(/<figcaption>Loss per epoch<\/figcaption><svg/);
    expect(html).toMatch(/<polyline fill="none" stroke="#2563eb"/);
    expect(html).toContain('<h2>Epochs</h2>');
    // Nothing loaded from elsewhere: no scripts, stylesheets or images by URL.
    expect(html).not.toMatch(/<script|<link|<img|src=|href=/);
  });

  it('generates reproducibly from a seed text', () => {
    const a = gyre('generate', 'names.safetensors', '--seed-text', 'gr', '-n', '3', '--temperature', '0', '--random-seed', '5');
    expect(a.code).toBe(0);
    const lines = a.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    // Greedy decoding of a memorised corpus completes the name.
    expect(lines[0]).toBe('greta');
    const b = gyre('generate', 'names.safetensors', '-n', '4', '--random-seed', '9', '--top-k', '3');
    const c = gyre('generate', 'names.safetensors', '-n', '4', '--random-seed', '9', '--top-k', '3');
    expect(b.stdout).toBe(c.stdout);
    expect(b.stdout.trim().split('\n')).toHaveLength(4);
  });

  it('reads characters outside the vocabulary as the unknown token, with a warning (an error with --strict)', () => {
    const r = gyre('generate', 'names.safetensors', '--seed-text', 'Zö', '-n', '1');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /warning: the seed text has characters outside the model's vocabulary: "Z", "ö"; they are read as the unknown token/,
    );
    expectCleanFailure(
      gyre('generate', 'names.safetensors', '--seed-text', 'Zö', '--strict'),
      /gyre: error: the seed text has characters outside/,
    );
  });

  it('evaluates and describes the model', () => {
    const e = gyre('eval', 'names.safetensors', 'names.txt');
    expect(e.code).toBe(0);
    const m = /cross-entropy [\d.]+ per token \(perplexity [\d.]+\), next-token accuracy ([\d.]+) \(top-5 ([\d.]+)\) over 80 texts/.exec(
      e.stdout,
    );
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThanOrEqual(Number(m![1]));
    const i = gyre('info', 'names.safetensors');
    expect(i.stdout).toMatch(/names\.safetensors: text model, [\d,]+ parameters, 30 epoch\(s\) trained/);
    expect(i.stdout).toMatch(/tokenizer: char-level, \d+ ids/);
    const j = JSON.parse(gyre('info', 'names.safetensors', '--json').stdout) as { task: string; tokenizer: { vocabSize: number } };
    expect(j.task).toBe('text');
    expect(j.tokenizer.vocabSize).toBe(2 + new Set(NAMES.join('')).size);
  });
});

describe('gyre train / forecast on a CSV series', () => {
  it('trains a forecaster, reports the held-out error and forecasts', () => {
    const t = gyre('train', 'wave.csv', '--out', 'wave.safetensors', '--epochs', '15', '--input-length', '12', '--hidden', '16', '--quiet');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/held-out MAE ([\d.]+) \(repeat-last-value baseline ([\d.]+)\) over 16 steps/);
    const [, mae, naive] = /held-out MAE ([\d.]+) \(repeat-last-value baseline ([\d.]+)\)/.exec(t.stdout)!;
    expect(Number(mae)).toBeLessThan(Number(naive));
    const f = gyre('forecast', 'wave.safetensors', 'wave.csv', '--steps', '5', '--json');
    expect(f.code).toBe(0);
    const out = JSON.parse(f.stdout) as { columns: string[]; forecast: number[][] };
    expect(out.columns).toEqual(['value']);
    expect(out.forecast).toHaveLength(5);
    // The true continuation of the wave; a trained model is within a few units of it.
    out.forecast.forEach(([v], k) => {
      expect(Math.abs(v! - (Math.sin((160 + k) / 4) * 10 + 50))).toBeLessThan(4);
    });
    const table = gyre('forecast', 'wave.safetensors', 'wave.csv');
    expect(table.stdout).toMatch(/step\tvalue\n\+1\t[\d.]+/);
    expect(gyre('eval', 'wave.safetensors', 'wave.csv').stdout).toMatch(
      /MAE [\d.]+, RMSE [\d.]+ \(MSE [\d.]+\) over \d+ windows; repeat-last-value baseline MAE/,
    );
    expect(gyre('info', 'wave.safetensors').stdout).toMatch(/window: 12 steps in, 1 out; columns value/);
  });
});

describe('gyre train defaults on a text corpus', () => {
  it('holds out 10%, stops early keeping the best epoch, and prints a 4-gram baseline beside the model (eval too)', () => {
    const t = gyre('train', 'names.txt', '--out', 'held.safetensors', '--epochs', '40', '--hidden', '16', '--lr', '0.05', '--quiet');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/validation loss [\d.]+/);
    const m =
      /cross-entropy on the 8 held-out sequences: ([\d.]+) nats\/token; character 4-gram baseline \(Witten-Bell, fitted on the training sequences\) ([\d.]+)/.exec(
        t.stdout,
      );
    expect(m).not.toBeNull();
    // The run stops before 40 epochs once the held-out loss stops improving, and keeps the best.
    const epochs = Number(/after (\d+) epochs/.exec(t.stdout)![1]);
    expect(epochs).toBeLessThan(40);
    const best = /kept the best epoch, (\d+) \(validation loss ([\d.]+)\)/.exec(t.stdout);
    expect(best).not.toBeNull();
    expect(Number(best![2])).toBeCloseTo(Number(m![1]), 3);
    const e = gyre('eval', 'held.safetensors', 'names.txt');
    expect(e.stdout).toMatch(/names\.txt: character 4-gram baseline \(Witten-Bell, fitted on the training sequences\) [\d.]+ per token/);
    const d = gyre('train', 'names.txt', '--out', 'drop.safetensors', '--epochs', '2', '--hidden', '8', '--dropout', '0.3', '--quiet');
    expect(d.code).toBe(0);
    const spec = JSON.parse(gyre('info', 'drop.safetensors', '--json').stdout) as { layers: { inputDropout?: number; dropout?: number }[] };
    expect(spec.layers[1]).toMatchObject({ inputDropout: 0.3, dropout: 0.3 });
  });
});

describe('gyre train --task classify on JSON lines', () => {
  it('trains a sequence classifier and evaluates it', () => {
    const t = gyre(
      'train',
      'ab.jsonl',
      '--out',
      'ab.safetensors',
      '--epochs',
      '15',
      '--hidden',
      '8',
      '--lr',
      '0.02',
      '--quiet',
      '--report',
      'ab.html',
    );
    expect(t.code).toBe(0);
    // Per-label figures and the confusion matrix, after training and in the report.
    expect(t.stdout).toMatch(/on the \d+ training texts:\n\s*label\s+precision\s+recall\s+f1\s+support\n\s+as\s/);
    const html = readFileSync(at('ab.html'), 'utf8');
    expect(html).toMatch(
      /<h2>Confusion matrix on the \d+ training texts<\/h2><table class="confusion"><tr><th>label \\ predicted<\/th><th>as<\/th><th>bs<\/th><\/tr>/,
    );
    const e = gyre('eval', 'ab.safetensors', 'ab.jsonl');
    expect(e.stdout).toMatch(/accuracy 1\.000/);
    const lines = e.stdout.split('\n');
    expect(lines.find((l) => /^\s*macro\s/.test(l))).toMatch(/^\s*macro\s+1\.000\s+1\.000\s+1\.000$/);
    const counts = readFileSync(at('ab.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { label: string }).label);
    const as = counts.filter((l) => l === 'as').length;
    const bs = counts.length - as;
    const at_ = lines.indexOf('confusion (rows: label, columns: predicted):');
    expect(lines[at_ + 2]).toMatch(new RegExp(`^\\s*as\\s+${as}\\s+0$`));
    expect(lines[at_ + 3]).toMatch(new RegExp(`^\\s*bs\\s+0\\s+${bs}$`));
    expect(gyre('info', 'ab.safetensors').stdout).toMatch(/labels: as, bs/);
  });
});

describe('gyre train / transduce / eval / info on source–target pairs', () => {
  it('trains an encoder–decoder, reports held-out error rates, transduces with a beam and draws the attention', () => {
    // Reversing letter strings: 400 pairs, 40 held out.
    let x = 7;
    const next = () => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x / 2147483648;
    };
    const pairs = Array.from({ length: 400 }, () => {
      const s = Array.from({ length: 2 + Math.floor(next() * 4) }, () => 'abcde'[Math.floor(next() * 5)]).join('');
      return `${s}\t${[...s].reverse().join('')}`;
    });
    writeFileSync(at('reverse.tsv'), `${pairs.join('\n')}\n`);
    const t = gyre(
      'train',
      'reverse.tsv',
      '--hidden',
      '32',
      '--epochs',
      '12',
      '--lr',
      '0.01',
      '--validation',
      '0.1',
      '--report',
      'reverse.html',
      '--seed',
      '2',
    );
    expect(t.stderr).toMatch(/training an encoder–decoder .* on 360 pairs from reverse\.tsv \(40 held out\)/);
    expect(t.code).toBe(0);
    const m = /held out: exact match ([\d.]+)%, token error rate ([\d.]+)% \(beam 5\)/.exec(t.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(80);
    expect(existsSync(at('reverse.safetensors'))).toBe(true);
    const html = readFileSync(at('reverse.html'), 'utf8');
    expect(html).toMatch(/Attention on 3 held-out example\(s\)/);
    expect(html).toMatch(/<table class="attention">/);
    const r = gyre('transduce', 'reverse.safetensors', 'abcd', 'eed', '--beam', '3');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('abcd\tdcba\need\tdee\n');
    const n = gyre('transduce', 'reverse.safetensors', 'abc', '--beam', '3', '--n-best', '2', '--json');
    const parsed = JSON.parse(n.stdout) as { source: string; outputs: { text: string; score: number }[] }[];
    expect(parsed[0]!.outputs).toHaveLength(2);
    expect(parsed[0]!.outputs[0]!.text).toBe('cba');
    // An ensemble of the model with itself decodes as the model alone.
    const both = gyre(
      'transduce',
      'reverse.safetensors',
      'abc',
      '--beam',
      '3',
      '--n-best',
      '2',
      '--json',
      '--ensemble',
      'reverse.safetensors',
    );
    expect(JSON.parse(both.stdout)).toEqual(parsed);
    expectCleanFailure(
      gyre('transduce', 'reverse.safetensors', 'abc', '--ensemble', 'reverse.tsv'),
      /reverse\.tsv is not an encoder–decoder/,
    );
    const e = gyre('eval', 'reverse.safetensors', 'reverse.tsv', '--beam', '1');
    expect(e.stdout).toMatch(
      /reverse\.tsv: exact match [\d.]+% \(sequence error rate [\d.]+%\), token error rate [\d.]+%, cross-entropy [\d.]+ per token, over 400 pairs \(beam 1\)/,
    );
    const i = gyre('info', 'reverse.safetensors');
    expect(i.stdout).toMatch(/seq2seq model, [\d,]+ parameters, \d+ epoch\(s\) trained/);
    expectCleanFailure(
      gyre('transduce', 'reverse.safetensors', 'abc', '--beam', '2', '--n-best', '3'),
      /--n-best \(3\) must not exceed --beam \(2\)/,
    );
    writeFileSync(at('bad.tsv'), 'abc\tcba\nno tab here\n');
    expectCleanFailure(gyre('train', 'bad.tsv'), /bad\.tsv line 2: expected "source<TAB>target"/);
  }, 120_000);
});

describe('bad input ends in one clear line and exit code 1', () => {
  it('an empty corpus', () => {
    writeFileSync(at('empty.txt'), '\n\n');
    expectCleanFailure(gyre('train', 'empty.txt'), /^gyre: error: empty\.txt has no text: the corpus is empty\n$/);
  });

  it('a non-numeric CSV cell, by line and column', () => {
    writeFileSync(at('bad.csv'), 'day,value\n1,10\n2,n/a\n');
    expectCleanFailure(gyre('train', 'bad.csv'), /^gyre: error: bad\.csv line 3, column "value": "n\/a" is not a number\n$/);
    expectCleanFailure(gyre('train', 'bad.csv', '--column', 'nope'), /bad\.csv has no column "nope"; its columns are day, value/);
  });

  it('a model file of the wrong kind for the subcommand', () => {
    expectCleanFailure(
      gyre('generate', 'wave.safetensors'),
      /^gyre: error: wave\.safetensors is a 'forecast' model; gyre generate needs a 'text' model \(made by gyre train <file\.txt>\)\n$/,
    );
    expectCleanFailure(
      gyre('forecast', 'names.safetensors', 'wave.csv'),
      /names\.safetensors is a 'text' model; gyre forecast needs a 'forecast' model/,
    );
    expectCleanFailure(gyre('info', 'names.txt'), /^gyre: error: names\.txt is not a gyre model file: /);
    expectCleanFailure(gyre('generate', 'missing.safetensors'), /^gyre: error: cannot read missing\.safetensors: no such file\n$/);
  });

  it('bad flags and malformed records', () => {
    expectCleanFailure(
      gyre('train', 'names.txt', '--epochs', 'ten'),
      /option '--epochs <n>' argument 'ten' is invalid\. must be a positive integer, got "ten"/,
    );
    expectCleanFailure(
      gyre('train', 'names.txt', '--cell', 'transformer'),
      /argument 'transformer' is invalid\. Allowed choices are lstm, gru, rnn/,
    );
    expectCleanFailure(gyre('launch'), /unknown command 'launch'/);
    writeFileSync(at('broken.jsonl'), '{"text":"a","label":"x"}\n{"text": oops}\n');
    expectCleanFailure(gyre('train', 'broken.jsonl'), /broken\.jsonl line 2 is not valid JSON/);
    writeFileSync(at('one.jsonl'), '{"text":"a","label":"x"}\n{"text":"b","label":"x"}\n');
    expectCleanFailure(gyre('train', 'one.jsonl'), /gyre: error: .*label/);
    expectCleanFailure(gyre('train', 'names.txt', '--task', 'classify'), /classification reads labelled records/);
  });
});
