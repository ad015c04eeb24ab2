#!/usr/bin/env node
/**
 * gyre's benchmark suite: gyre against brain.js, TensorFlow.js (cpu and wasm backends) and
 * onnxruntime-node on four recurrent workloads, plus the machine's sgemm roof, streaming step
 * latency and the peak memory of training.
 *
 * How to run (after `npm install`, which builds dist/ and the native addon):
 *
 *   npm run bench                 # full run: about 9 minutes on a 2-core Xeon (limit ~15)
 *   npm run bench -- --quick      # CI smoke run: about 1¾ minutes there (limit ~2)
 *   node benchmark/run.mjs [--quick] [--out FILE] [--libs gyre,onnxruntime,...] [--workloads lstm-m,...]
 *
 * It prints a markdown report to stdout (progress goes to stderr) and writes every number to
 * benchmark/results.json (or --out). Run it on an otherwise idle machine: other processes on
 * the same cores change every number. Each library × workload runs in its own child process
 * (benchmark/lib/worker.mjs), one after another.
 *
 * Workloads (float32, a dense readout at every step; benchmark/lib/workloads.mjs):
 *   lstm-s  LSTM, input 32 (one-hot), hidden 64, 16 steps, batch 1, softmax over 32, cross-entropy
 *   lstm-m  LSTM, input 128, hidden 256, 64 steps, batch 32, readout 128, MSE
 *   gru-m   lstm-m with a GRU
 *   lstm-l  LSTM, input 512, hidden 512, 100 steps, batch 64, readout 512, MSE
 *
 * Columns of the main table:
 *   workload, mode   inference (forward with the readout) or training (forward, backward, an
 *                    optimizer update: Adam for gyre and tfjs; brain.js has its own per-sample
 *                    RMSProp-style update)
 *   library          gyre; onnxruntime (inference only; the model is gyre's toOnnx export);
 *                    tfjs-cpu / tfjs-wasm (TensorFlow.js backends); brain.js
 *   threads          threads the library computes on (gyre.setNumThreads, onnxruntime
 *                    intraOpNumThreads; brain.js and tfjs-cpu are single-threaded JavaScript,
 *                    tfjs-wasm reports its XNNPACK thread count)
 *   seq/s            sequences per second: sequences per repetition ÷ median repetition time
 *   GFLOP/s          effective: seq/s × recurrence matrix FLOPs per sequence, counted as
 *                    steps · 2·G·H·(I+H) (G = 4 LSTM, 3 GRU), × 3 for training; the same count
 *                    for every library, whatever it actually computes
 *   gyre ÷ it        gyre's seq/s at the same thread count divided by this row's: > 1 means gyre
 *                    is faster (single-threaded baselines are compared with gyre on 1 thread)
 *   samples          timed repetitions × sequences per repetition, after a warm-up repetition.
 *                    Slow baselines (brain.js, tfjs) get a time budget: the repetition size
 *                    is chosen from the warm-up so that the repetitions fill the budget, and
 *                    when one unit (a sequence for brain.js, a batch for tfjs) already takes
 *                    more than half the budget, that single warm-up run is the sample
 *                    ("warm-up only"): the rate reached is reported, not a skip.
 *
 * Further sections: gyre's 2-thread ÷ 1-thread speedup; the roof (gyre's sgemm GFLOP/s at
 * 1024³, measured through lstmForward, see lib/gyre.mjs roof()) and gyre's lstm-l training
 * GFLOP/s as a fraction of it; streaming latency of one `stream.step` (LSTM input 32, hidden
 * 128, batch 1); peak RSS of lstm-l training against the arithmetic of what training holds.
 *
 * --quick uses fewer repetitions, fewer batches and short time budgets, and skips lstm-l for
 * the slow baselines (brain.js, tfjs-cpu, tfjs-wasm), never for gyre or onnxruntime.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WORKLOADS, flopsPerSequence, forwardFlopsPerSequence, parameterCount } from './lib/workloads.mjs';
import { renderMarkdown } from './lib/report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

// ---------------------------------------------------------------------------------------------
// Options and settings.

function parseArgs(argv) {
  const o = { quick: false, out: path.join(here, 'results.json'), libs: null, workloads: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--out')) o.out = path.resolve(value());
    else if (a.startsWith('--libs')) o.libs = value().split(',');
    else if (a.startsWith('--workloads')) o.workloads = value().split(',');
    else if (a === '--help' || a === '-h') {
      console.log('usage: node benchmark/run.mjs [--quick] [--out FILE] [--libs a,b] [--workloads a,b]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const options = parseArgs(process.argv.slice(2));

/** Repetitions, batches and budgets of each mode (passed to every worker). */
const SETTINGS = options.quick
  ? {
      mode: 'quick',
      threads: [1, 2],
      reps: 3, // gyre and onnxruntime: timed repetitions after one warm-up...
      minReps: 2, // ...at least this many even past the budget
      fastBudgetMs: 3000,
      minTotalMs: 500, // ...and keep sampling short repetitions for this long
      batches: { 'lstm-s': 128, 'lstm-m': 2, 'gru-m': 2, 'lstm-l': 1 }, // batches per repetition
      slowReps: 2, // brain.js and tfjs
      slowBudgetMs: { inference: 2000, training: 3000 },
      maxSlowSequences: 64,
      roofPairs: 7,
      streamSteps: 10000,
      memoryBatches: [1],
      taskTimeoutMs: 240_000,
    }
  : {
      mode: 'full',
      threads: [1, 2],
      reps: 7,
      minReps: 3,
      fastBudgetMs: 20_000,
      minTotalMs: 3000,
      batches: { 'lstm-s': 512, 'lstm-m': 8, 'gru-m': 8, 'lstm-l': 2 },
      slowReps: 5,
      slowBudgetMs: { inference: 12_000, training: 20_000 },
      maxSlowSequences: 256,
      roofPairs: 21,
      streamSteps: 10000,
      memoryBatches: [1, 4],
      taskTimeoutMs: 900_000,
    };

const LIBRARIES = ['gyre', 'onnxruntime', 'tfjs-cpu', 'tfjs-wasm', 'brain.js'];
const SLOW = new Set(['tfjs-cpu', 'tfjs-wasm', 'brain.js']);

// ---------------------------------------------------------------------------------------------
// Running tasks in child processes.

function runTask(task, env = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--expose-gc', path.join(here, 'lib', 'worker.mjs'), JSON.stringify(task)], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), SETTINGS.taskTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (line) return resolve({ ...JSON.parse(line.slice(7)), wallMs });
      const why =
        signal === 'SIGKILL'
          ? `killed after the ${SETTINGS.taskTimeoutMs / 1000} s task timeout`
          : `exited with code ${code}${signal ? ` (${signal})` : ''}`;
      resolve({ ok: false, error: `${why}; stderr: ${stderr.trim().split('\n').slice(-5).join(' | ')}`, wallMs });
    });
  });
}

function log(msg) {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

function version(pkg) {
  try {
    return JSON.parse(readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Main.

const started = performance.now();
const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model ?? 'unknown',
  cores: cpus.length,
  availableParallelism: os.availableParallelism?.() ?? cpus.length,
  memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  node: process.version,
  loadAverageAtStart: os.loadavg().map((v) => +v.toFixed(2)),
};
const versions = {
  gyre: JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version,
  'brain.js': version('brain.js'),
  '@tensorflow/tfjs': version('@tensorflow/tfjs'),
  '@tensorflow/tfjs-backend-wasm': version('@tensorflow/tfjs-backend-wasm'),
  'onnxruntime-node': version('onnxruntime-node'),
};

const workloads = Object.keys(WORKLOADS).filter((w) => !options.workloads || options.workloads.includes(w));
const libraries = LIBRARIES.filter((l) => !options.libs || options.libs.includes(l));
log(`${SETTINGS.mode} run: ${libraries.join(', ')} on ${workloads.join(', ')}; ${machine.cores} × ${machine.cpu}, Node ${machine.node}`);

const rows = [];
const failures = [];
const skipped = [];
const taskWallMs = {};

for (const wname of workloads) {
  for (const lib of libraries) {
    if (options.quick && wname === 'lstm-l' && SLOW.has(lib)) {
      skipped.push({ library: lib, workload: wname, reason: 'skipped in --quick (slow baseline on lstm-l)' });
      continue;
    }
    log(`${lib} ${wname} ...`);
    const r = await runTask({ kind: 'lib', lib, workload: wname, settings: SETTINGS });
    taskWallMs[`${lib} ${wname}`] = Math.round(r.wallMs);
    if (!r.ok) {
      failures.push({ library: lib, workload: wname, error: r.error });
      log(`  FAILED: ${r.error.split('\n')[0]}`);
      continue;
    }
    const w = WORKLOADS[wname];
    for (const row of r.result) {
      const full = { library: lib, workload: wname, ...row, gflops: (row.seqPerSec * flopsPerSequence(w, row.mode)) / 1e9 };
      rows.push(full);
      log(
        `  ${row.mode.padEnd(9)} ${String(row.threads).padStart(2)} thr  ${full.seqPerSec.toFixed(1).padStart(9)} seq/s  ${full.gflops.toFixed(2).padStart(7)} GFLOP/s  (${row.reps} × ${row.seqsPerRep} seq${row.warmupOnly ? ', warm-up only' : ''})`,
      );
    }
  }
}

// The roof and the streaming latency go through gyre's functional API and stream.step, which
// (gyre 0.1.0) run on rayon's global pool rather than the pool setNumThreads sizes; so each
// thread count gets its own process with that pool pinned by RAYON_NUM_THREADS (and
// GYRE_NUM_THREADS, and setNumThreads, for whatever does use gyre's pool).
const extras = {};
async function extra(kind, threads, batches) {
  const label = threads
    ? `gyre ${kind} (${threads} thread${threads > 1 ? 's' : ''})`
    : `gyre ${kind}${batches ? ` (${batches} batch${batches > 1 ? 'es' : ''})` : ''}`;
  log(`${label} ...`);
  const settings = { ...SETTINGS, ...(threads ? { threads: [threads] } : {}), ...(batches ? { memoryBatches: batches } : {}) };
  const env = threads ? { RAYON_NUM_THREADS: String(threads), GYRE_NUM_THREADS: String(threads) } : {};
  const r = await runTask({ kind, settings }, env);
  taskWallMs[label] = Math.round(r.wallMs);
  if (!r.ok) {
    failures.push({ library: 'gyre', workload: label.slice('gyre '.length), error: r.error });
    log(`  FAILED: ${r.error.split('\n')[0]}`);
    return;
  }
  extras[kind] = Array.isArray(r.result) ? [...(extras[kind] ?? []), ...r.result] : r.result;
}
if (libraries.includes('gyre')) {
  for (const threads of SETTINGS.threads) await extra('roof', threads);
  for (const threads of SETTINGS.threads) await extra('stream', threads);
  // Each fit in its own process: one batch (what training one batch holds) and, in a full
  // run, several (fit's copy of the whole training set grows with it).
  for (const batches of SETTINGS.memoryBatches) await extra('memory', 0, batches);
}

// Ratios: gyre at the same thread count (1 for the single-threaded baselines) ÷ the row.
const gyreRow = (workload, mode, threads) =>
  rows.find((r) => r.library === 'gyre' && r.workload === workload && r.mode === mode && r.threads === threads);
for (const r of rows) {
  if (r.library === 'gyre') continue;
  const g = gyreRow(r.workload, r.mode, r.threads) ?? gyreRow(r.workload, r.mode, 1);
  if (g) {
    r.gyreThreads = g.threads;
    r.gyreRatio = g.seqPerSec / r.seqPerSec;
  }
}

// gyre's 2-thread ÷ 1-thread speedup.
const speedups = [];
for (const wname of workloads) {
  for (const mode of ['inference', 'training']) {
    const one = gyreRow(wname, mode, 1);
    const two = gyreRow(wname, mode, 2);
    if (one && two)
      speedups.push({ workload: wname, mode, oneThread: one.seqPerSec, twoThreads: two.seqPerSec, speedup: two.seqPerSec / one.seqPerSec });
  }
}

// Fraction of the roof reached by gyre's lstm-l training, at each thread count.
const roofFraction = [];
for (const roof of extras.roof ?? []) {
  const r = gyreRow('lstm-l', 'training', roof.threads);
  if (r) roofFraction.push({ threads: roof.threads, trainingGflops: r.gflops, roofGflops: roof.gflops, fraction: r.gflops / roof.gflops });
}

machine.loadAverageAtEnd = os.loadavg().map((v) => +v.toFixed(2));
const durationS = (performance.now() - started) / 1000;
const results = {
  generatedBy: 'benchmark/run.mjs',
  mode: SETTINGS.mode,
  date: new Date().toISOString(),
  durationS: +durationS.toFixed(1),
  machine,
  versions,
  settings: SETTINGS,
  workloads: Object.fromEntries(
    workloads.map((w) => [
      w,
      { ...WORKLOADS[w], parameters: parameterCount(WORKLOADS[w]), forwardFlopsPerSequence: forwardFlopsPerSequence(WORKLOADS[w]) },
    ]),
  ),
  rows,
  speedups,
  roof: extras.roof ?? null,
  roofFraction,
  stream: extras.stream ?? null,
  memory: extras.memory ?? null,
  failures,
  skipped,
  taskWallMs,
};
writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(renderMarkdown(results, path.relative(process.cwd(), options.out) || options.out));
log(`done in ${durationS.toFixed(0)} s; wrote ${options.out}`);
