/**
 * gyre's benchmark suite: gyre against brain.js, TensorFlow.js (cpu and wasm backends),
 * onnxruntime-node and PyTorch (CPU; when a python with torch is given) on four recurrent
 * workloads, plus roofs that are not gyre's own (an external sgemm and the core's multiply-add
 * peak), gyre's own 1024³ product against them, a second pass of gyre's rows on its AVX2 code
 * (on AVX-512 machines), streaming step latency and the peak memory of training.
 *
 * How to run (after `npm install`, which builds dist/ and the native addon):
 *
 *   npm run bench                 # full run: about 26 minutes on a 2-core AMD EPYC with PyTorch
 *   npm run bench -- --quick      # smoke run: about 2½ minutes there, 3 with PyTorch
 *   node benchmark/run.mjs [--quick] [--out FILE] [--libs gyre,onnxruntime,pytorch,...] [--workloads lstm-m,...]
 *                          [--rounds N] [--torch-python PATH] [--no-avx2-pass]
 *
 * PyTorch rows: PyTorch is never a dependency of gyre (npm never installs it). Give the suite a
 * python that has torch, with `--torch-python PATH` or the environment variable
 * GYRE_BENCH_TORCH_PYTHON=PATH, e.g. after
 *
 *   python3 -m venv ~/torchenv && ~/torchenv/bin/pip install torch numpy
 *   npm run bench -- --torch-python ~/torchenv/bin/python
 *
 * (benchmark/torch_bench.py is what that python runs.) Without one, the PyTorch rows of the
 * report say how to enable them and everything else runs as usual.
 *
 * It prints a markdown report to stdout (progress goes to stderr) and writes every number to
 * benchmark/results.json (or --out). Run it on an otherwise idle machine: other processes on
 * the same cores change every number. Each library × workload runs in its own child process
 * (benchmark/lib/worker.mjs for the Node libraries, benchmark/torch_bench.py for PyTorch), one
 * after another. gyre runs as built in native/: the run logs that addon's hash and warns when
 * Rust sources changed after it was built (benchmark/lib/build.mjs).
 *
 * Workloads (float32, a dense readout at every step; benchmark/lib/workloads.mjs):
 *   lstm-s  LSTM, input 32 (one-hot), hidden 64, 16 steps, batch 1, softmax over 32, cross-entropy
 *   lstm-m  LSTM, input 128, hidden 256, 64 steps, batch 32, readout 128, MSE
 *   gru-m   lstm-m with a GRU
 *   lstm-l  LSTM, input 512, hidden 512, 100 steps, batch 64, readout 512, MSE
 *
 * Columns of the main table:
 *   workload, mode   inference (forward with the readout) or training (forward, backward, an
 *                    optimizer update: Adam for gyre, tfjs and PyTorch; brain.js has its own
 *                    per-sample RMSProp-style update)
 *   library          gyre; gyre [GYRE_SIMD=avx2] (the second pass, below); gyre-wasm (gyre's
 *                    WebAssembly build, gyre-wasm32-wasi, in processes started with GYRE_WASM=1;
 *                    where it is not built, the report says how); onnxruntime
 *                    (inference only; the model is gyre's toOnnx export); pytorch (nn.LSTM /
 *                    nn.GRU and nn.Linear, inference under torch.inference_mode, training with
 *                    nn.MSELoss or nn.CrossEntropyLoss and torch.optim.Adam); tfjs-cpu /
 *                    tfjs-wasm (TensorFlow.js backends); brain.js
 *   threads          threads the library computes on (gyre.setNumThreads, onnxruntime
 *                    intraOpNumThreads, torch.set_num_threads; brain.js and tfjs-cpu are
 *                    single-threaded JavaScript, tfjs-wasm reports its XNNPACK thread count)
 *   seq/s            sequences per second: sequences per repetition ÷ median repetition time;
 *                    gyre, onnxruntime and PyTorch run in alternated rounds per workload (3,
 *                    1 with --quick, or --rounds N) and their rows are the median round
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
 * The AVX2 pass: on a CPU where gyre runs its AVX-512 code, gyre's rows are measured a second
 * time in processes started with GYRE_SIMD=avx2 (and gyre's 1024³ product too), and every
 * ratio is reported for both levels. On Linux x86-64 with CPUID faulting (Intel since Ivy
 * Bridge, KVM guests), benchmark/lib/avx2_cpu.c, built with `cc` and preloaded, makes the CPU
 * look like an AVX2 + FMA one to every library in the process: onnxruntime, PyTorch and numpy's
 * OpenBLAS are then measured again at AVX2 too, and the AVX2 rows set AVX2 code against AVX2
 * code. Where it cannot be built or does not take, PyTorch alone is capped (by its environment
 * variables) and onnxruntime keeps its AVX-512 code; the report says which. Either way this is
 * this CPU running AVX2 code, not an AVX2 CPU, whose caches, ports and clocks differ.
 * --no-avx2-pass skips it.
 *
 * Roofs (none of them gyre's code):
 *   sgemm            an f32 1024³ product by numpy (OpenBLAS) when a python with numpy is at
 *                    hand (the --torch-python one, else python3; benchmark/numpy_sgemm.py, one
 *                    process per thread count with OPENBLAS_NUM_THREADS), else the faster of
 *                    the Rust crates `gemm` and matrixmultiply (both are always measured).
 *   FMA peak         fused multiply-adds on registers only, independent chains, at the CPU's
 *                    widest level and at AVX2 width, 1 and 2 threads. The Rust parts are
 *                    `cargo run --release -p gyre-core --example roof` (built by the suite).
 * gyre's own 1024³ product (through lstmForward, lib/gyre.mjs product1024) and its lstm-l
 * training GFLOP/s are reported as fractions of both, at each level and thread count.
 *
 * Further sections: gyre's WebAssembly build ÷ TensorFlow.js' WebAssembly backend (and native
 * gyre ÷ its WebAssembly build); gyre's 2-thread ÷ 1-thread speedup; the table the README's Benchmarks
 * section is made from (per level: gyre 1/2 threads and gyre ÷ each baseline); streaming
 * latency of one `stream.step` (LSTM input 32, hidden 128, batch 1); peak RSS of lstm-l
 * training against the arithmetic of what training holds. The machine record includes the
 * CPU (os.cpus() and /proc/cpuinfo: family, model, SIMD flags) and gyre's SIMD level.
 *
 * --quick uses fewer repetitions, fewer batches, short time budgets and fewer roof rounds, and
 * skips lstm-l for the slow baselines (brain.js, tfjs-cpu, tfjs-wasm), never for gyre,
 * onnxruntime or PyTorch.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WORKLOADS, flopsPerSequence, forwardFlopsPerSequence, parameterCount } from './lib/workloads.mjs';
import { renderMarkdown } from './lib/report.mjs';
import { addonBuild } from './lib/build.mjs';
import { mergeRounds } from './lib/timing.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

// ---------------------------------------------------------------------------------------------
// Options and settings.

const USAGE =
  'usage: node benchmark/run.mjs [--quick] [--out FILE] [--libs a,b] [--workloads a,b] [--rounds N] [--torch-python PATH] [--no-avx2-pass]';

function parseArgs(argv) {
  const o = {
    quick: false,
    out: path.join(here, 'results.json'),
    libs: null,
    workloads: null,
    torchPython: process.env.GYRE_BENCH_TORCH_PYTHON || null,
    avx2Pass: true,
    rounds: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--out')) o.out = path.resolve(value());
    else if (a.startsWith('--libs')) o.libs = value().split(',');
    else if (a.startsWith('--workloads')) o.workloads = value().split(',');
    else if (a.startsWith('--torch-python')) o.torchPython = value();
    else if (a.startsWith('--rounds')) {
      const v = value();
      o.rounds = Number(v);
      if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error(`--rounds must be a whole number ≥ 1, got ${v}\n${USAGE}`);
    } else if (a === '--no-avx2-pass') o.avx2Pass = false;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return o;
}

const options = parseArgs(process.argv.slice(2));

/** Repetitions, batches and budgets of each mode (passed to every worker). */
const SETTINGS = options.quick
  ? {
      mode: 'quick',
      threads: [1, 2],
      rounds: 1, // gyre, onnxruntime and PyTorch: alternated runs per workload (see ROUNDS)
      reps: 3, // gyre, onnxruntime and PyTorch: timed repetitions after one warm-up...
      minReps: 2, // ...at least this many even past the budget
      fastBudgetMs: 3000,
      minTotalMs: 500, // ...and keep sampling short repetitions for this long
      batches: { 'lstm-s': 128, 'lstm-m': 2, 'gru-m': 2, 'lstm-l': 1 }, // batches per repetition
      slowReps: 2, // brain.js and tfjs
      slowBudgetMs: { inference: 2000, training: 3000 },
      maxSlowSequences: 64,
      productPairs: 7, // gyre's 1024³ product: pairs of calls
      roofRounds: 5, // external sgemm: timed products; FMA probe: rounds (at most 7)
      streamSteps: 10000,
      seq2seqEpochs: 1,
      attentionPairs: 512, // the encoder–decoder both gyre and TensorFlow.js express: gyre's pairs per epoch...
      attentionSlowPairs: 128, // ...and TensorFlow.js'
      memoryBatches: [1],
      taskTimeoutMs: 240_000,
    }
  : {
      mode: 'full',
      threads: [1, 2],
      rounds: 3,
      reps: 7,
      minReps: 3,
      fastBudgetMs: 20_000,
      minTotalMs: 3000,
      batches: { 'lstm-s': 512, 'lstm-m': 8, 'gru-m': 8, 'lstm-l': 2 },
      slowReps: 5,
      slowBudgetMs: { inference: 12_000, training: 20_000 },
      maxSlowSequences: 256,
      productPairs: 21,
      roofRounds: 11,
      streamSteps: 10000,
      seq2seqEpochs: 3,
      attentionPairs: 2048,
      attentionSlowPairs: 256,
      memoryBatches: [1, 4],
      taskTimeoutMs: 900_000,
    };
if (options.rounds) SETTINGS.rounds = options.rounds;

const LIBRARIES = ['gyre', 'gyre-wasm', 'onnxruntime', 'pytorch', 'tfjs-cpu', 'tfjs-wasm', 'brain.js'];
const SLOW = new Set(['tfjs-cpu', 'tfjs-wasm', 'brain.js']);

/** How to get the PyTorch rows, said wherever they are missing. */
const TORCH_HOW =
  'give the suite a python with torch: --torch-python PATH or GYRE_BENCH_TORCH_PYTHON=PATH ' +
  '(e.g. python3 -m venv ~/torchenv && ~/torchenv/bin/pip install torch numpy); npm never installs PyTorch';

// ---------------------------------------------------------------------------------------------
// Running tasks in child processes.

/**
 * Runs `command args` and resolves with the JSON of its last stdout line starting with
 * `prefix` (`RESULT ` for the suite's workers: `{ ok, result | error }`; '' for a bare JSON
 * line, wrapped as `{ ok: true, result }`), or `{ ok: false, error }`; plus `wallMs`.
 */
function runProcess(command, args, { env = {}, prefix = 'RESULT ' } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let spawnError = null;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err) => (spawnError = err));
    const timer = setTimeout(() => child.kill('SIGKILL'), SETTINGS.taskTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      const line = stdout
        .split('\n')
        .filter((l) => (prefix ? l.startsWith(prefix) : l.startsWith('{')))
        .pop();
      if (line) {
        try {
          const parsed = JSON.parse(line.slice(prefix.length));
          return resolve({ ...(prefix ? parsed : { ok: true, result: parsed }), wallMs });
        } catch (err) {
          return resolve({ ok: false, error: `unreadable result (${err.message}): ${line.slice(0, 200)}`, wallMs });
        }
      }
      const why = spawnError
        ? `could not start ${command}: ${spawnError.message}`
        : signal === 'SIGKILL'
          ? `killed after the ${SETTINGS.taskTimeoutMs / 1000} s task timeout`
          : `exited with code ${code}${signal ? ` (${signal})` : ''}`;
      resolve({ ok: false, error: `${why}; stderr: ${stderr.trim().split('\n').slice(-5).join(' | ')}`, wallMs });
    });
  });
}

/** A task of benchmark/lib/worker.mjs in its own Node process. */
function runTask(task, env = {}) {
  return runProcess(process.execPath, ['--expose-gc', path.join(here, 'lib', 'worker.mjs'), JSON.stringify(task)], { env });
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

/** What /proc/cpuinfo says of the first CPU (Linux; fields it lacks are left out). */
function cpuInfo() {
  let text;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
  const first = text.split(/\n\s*\n/)[0];
  const field = (k) => first.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim();
  const int = (k) => (field(k) != null ? Number.parseInt(field(k), 10) : undefined);
  const flags = new Set((field('flags') ?? field('Features') ?? '').split(/\s+/));
  const simd = [
    'sse4_2',
    'avx',
    'avx2',
    'fma',
    'avx512f',
    'avx512bw',
    'avx512vl',
    'avx512_vnni',
    'avx512_bf16',
    'avx512_fp16',
    'amx_tile',
    'asimd',
    'sve',
  ];
  const siblings = int('siblings');
  const cores = int('cpu cores');
  return {
    modelName: field('model name') ?? field('Model') ?? null,
    vendor: field('vendor_id') ?? field('CPU implementer') ?? null,
    family: int('cpu family'),
    model: int('model'),
    stepping: int('stepping'),
    mhz: field('cpu MHz') != null ? Number(field('cpu MHz')) : undefined,
    simdFlags: simd.filter((f) => flags.has(f)),
    threadsPerCore: siblings && cores ? siblings / cores : undefined,
    hypervisor: flags.has('hypervisor'),
  };
}

// ---------------------------------------------------------------------------------------------
// Main.

const started = performance.now();
const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model ?? 'unknown',
  cpuInfo: cpuInfo(),
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
const failures = [];
const skipped = [];
const taskWallMs = {};

// gyre's SIMD level here (the default pass), and whether an AVX2 pass follows.
const gyreInfo = libraries.includes('gyre') ? await runTask({ kind: 'info' }) : null;
if (gyreInfo && !gyreInfo.ok) throw new Error(`gyre does not load: ${gyreInfo.error}`);
const simdLevel = gyreInfo?.result.simdLevel ?? null;
machine.simdLevel = simdLevel;
const avx2Pass = options.avx2Pass && simdLevel === 'avx512';
const levels = simdLevel ? [simdLevel, ...(avx2Pass ? ['avx2'] : [])] : [];

/**
 * The AVX2 pass's CPU for every library (benchmark/lib/avx2_cpu.c): built with `cc` into
 * target/bench/ and checked by loading gyre under it, which must then find AVX2 and no more.
 * `{ preload, env }` where it takes, `{ preload: null, reason }` where it does not.
 */
async function avx2Cpu() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { preload: null, reason: 'not Linux x86-64' };
  const so = path.join(root, 'target', 'bench', 'avx2_cpu.so');
  mkdirSync(path.dirname(so), { recursive: true });
  const cc = process.env.CC || 'cc';
  const build = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-o', so, path.join(here, 'lib', 'avx2_cpu.c'), '-ldl'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (build.status !== 0)
    return {
      preload: null,
      reason: `${cc} could not build benchmark/lib/avx2_cpu.c: ${(build.error?.message ?? build.stderr ?? '').trim().split('\n')[0]}`,
    };
  const env = { LD_PRELOAD: [so, process.env.LD_PRELOAD].filter(Boolean).join(' ') };
  const check = await runTask({ kind: 'info' }, env);
  if (!check.ok) return { preload: null, reason: `gyre does not load under it: ${check.error.split('\n')[0]}` };
  if (check.result.simdLevel !== 'avx2')
    return { preload: null, reason: `gyre still found ${check.result.simdLevel} under it (no CPUID faulting here?)` };
  return { preload: path.relative(root, so), env };
}
const avx2Preload = avx2Pass ? await avx2Cpu() : { preload: null, reason: 'no AVX2 pass' };
if (avx2Pass)
  log(
    avx2Preload.preload
      ? `AVX2 pass: every library sees an AVX2 + FMA CPU (${avx2Preload.preload} preloaded)`
      : `AVX2 pass: gyre and PyTorch capped by their switches, onnxruntime at its best (${avx2Preload.reason})`,
  );
/** The environment of every AVX2-pass process: the preload where it took. */
const AVX2_ENV = avx2Preload.env ?? {};

// gyre's WebAssembly build (gyre-wasm32-wasi): the gyre rows again in processes started with
// GYRE_WASM=1, where it is built (npm run build:wasm) or installed.
const WASM_HOW = 'build it with `npm run build:wasm` (needs `rustup target add wasm32-wasip1-threads`)';
const gyreWasm = { requested: libraries.includes('gyre-wasm'), available: false, reason: null };
if (gyreWasm.requested) {
  const check = await runTask({ kind: 'info' }, { GYRE_WASM: '1' });
  if (check.ok && check.result.simdLevel === 'simd128') gyreWasm.available = true;
  else gyreWasm.reason = check.ok ? `it runs at ${check.result.simdLevel}, not simd128` : check.error.split('\n')[0];
  if (!gyreWasm.available)
    skipped.push({
      library: 'gyre-wasm',
      workload: '(every workload)',
      reason: `not run, no WebAssembly build (${gyreWasm.reason}): ${WASM_HOW}`,
    });
}

// PyTorch: only with a python that has torch.
const torch = { requested: libraries.includes('pytorch'), python: options.torchPython, available: false, reason: null };
if (torch.requested) {
  if (!torch.python) torch.reason = 'no python with torch given';
  else {
    const v = await runProcess(torch.python, [path.join(here, 'torch_bench.py'), '--versions']);
    if (v.ok) {
      torch.available = true;
      versions.torch = v.result.torch;
      torch.versions = v.result;
    } else torch.reason = `${torch.python} cannot run PyTorch: ${v.error.split('\n').filter(Boolean).pop()}`;
  }
  if (!torch.available)
    skipped.push({ library: 'pytorch', workload: '(every workload)', reason: `not run, ${torch.reason}: ${TORCH_HOW}` });
}

log(
  `${SETTINGS.mode} run: ${libraries.filter((l) => l !== 'pytorch' || torch.available).join(', ')} on ${workloads.join(', ')}; ` +
    `${machine.cores} × ${machine.cpu}, gyre SIMD ${simdLevel ?? '–'}${avx2Pass ? ' (+ an AVX2 pass)' : ''}, Node ${machine.node}` +
    (torch.available ? `, PyTorch ${versions.torch} (${torch.python})` : ''),
);
if (torch.requested && !torch.available) log(`PyTorch rows not run: ${torch.reason}; ${TORCH_HOW}`);
// The addon measured, and whether the Rust sources changed after it was built.
if (libraries.includes('gyre')) {
  const build = addonBuild(root, gyreInfo?.result.addon ?? null);
  versions.gyreAddon = build;
  if (build) {
    log(`gyre addon ${build.addon} (sha256 ${build.sha256}…, built ${build.builtAt})`);
    const n = build.newerSources.length;
    if (n > 0)
      log(
        `warning: ${n} Rust source file${n > 1 ? 's' : ''} changed after the addon was built ` +
          `(${build.newerSources.slice(0, 3).join(', ')}${n > 3 ? ', …' : ''}): this run measures the addon as ` +
          'built, not the sources; rebuild it first (npm run build:native)',
      );
  }
}

const rows = [];

function addRows(lib, wname, r, label, extra = {}) {
  if (!r.ok) {
    failures.push({ library: label, workload: wname, error: r.error });
    log(`  FAILED: ${r.error.split('\n')[0]}`);
    return;
  }
  const w = WORKLOADS[wname];
  for (const row of r.result) {
    const full = { library: lib, workload: wname, ...row, ...extra, gflops: (row.seqPerSec * flopsPerSequence(w, row.mode)) / 1e9 };
    rows.push(full);
    const rounds = row.roundsSeqPerSec ? `; rounds ${row.roundsSeqPerSec.map((v) => v.toFixed(1)).join(' / ')}` : '';
    log(
      `  ${row.mode.padEnd(9)} ${String(row.threads).padStart(2)} thr  ${full.seqPerSec.toFixed(1).padStart(9)} seq/s  ${full.gflops.toFixed(2).padStart(7)} GFLOP/s  (${row.reps} × ${row.seqsPerRep} seq${row.warmupOnly ? ', warm-up only' : ''}${rounds})`,
    );
  }
}

/**
 * gyre, onnxruntime and PyTorch run ROUNDS times on each workload, alternated (gyre,
 * onnxruntime, PyTorch, gyre, …), and each row is the median round: this machine's other
 * work (a shared host moves a 2-core guest's rates by ±10% from one minute to the next) then
 * weighs on both sides of a ratio alike instead of on whichever library ran during a slow
 * minute. The slow baselines run once.
 */
const ROUNDS = SETTINGS.rounds;
const ROUNDED = new Set(['gyre', 'onnxruntime', 'pytorch']);

/** Runs `tasks` (label → () => Promise<result>) ROUNDS times, alternated; label → results. */
async function inRounds(tasks) {
  const out = new Map();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [label, run] of tasks) {
      log(`${label}${ROUNDS > 1 ? ` (round ${round + 1} of ${ROUNDS})` : ''} ...`);
      const r = await run();
      out.set(label, [...(out.get(label) ?? []), r]);
      taskWallMs[label] = (taskWallMs[label] ?? 0) + Math.round(r.wallMs);
    }
  }
  return out;
}

/** The median-round result of `label` in `rounded` (what {@link inRounds} returned), said in the log. */
function medianRound(rounded, label) {
  log(`${label}${ROUNDS > 1 ? `: the median of ${ROUNDS} rounds` : ''}`);
  return mergeRounds(rounded.get(label));
}

/** PyTorch on one workload (benchmark/torch_bench.py in the given python), with `env` added. */
function torchTask(wname, env = {}) {
  const task = JSON.stringify({ workload: WORKLOADS[wname], settings: SETTINGS });
  return runProcess(torch.python, [path.join(here, 'torch_bench.py'), task], { env });
}

for (const wname of workloads) {
  const runnable = libraries.filter((lib) => {
    if (options.quick && wname === 'lstm-l' && SLOW.has(lib)) {
      skipped.push({ library: lib, workload: wname, reason: 'skipped in --quick (slow baseline on lstm-l)' });
      return false;
    }
    return !(lib === 'pytorch' && !torch.available) && !(lib === 'gyre-wasm' && !gyreWasm.available);
  });
  const run = (lib) =>
    lib === 'pytorch'
      ? torchTask(wname)
      : lib === 'gyre-wasm'
        ? runTask({ kind: 'lib', lib: 'gyre', workload: wname, settings: SETTINGS }, { GYRE_WASM: '1' })
        : runTask({ kind: 'lib', lib, workload: wname, settings: SETTINGS });
  const rounded = await inRounds(runnable.filter((lib) => ROUNDED.has(lib)).map((lib) => [`${lib} ${wname}`, () => run(lib)]));
  for (const lib of runnable) {
    if (ROUNDED.has(lib)) {
      addRows(lib, wname, medianRound(rounded, `${lib} ${wname}`), lib);
      continue;
    }
    log(`${lib} ${wname} ...`);
    const r = await run(lib);
    taskWallMs[`${lib} ${wname}`] = Math.round(r.wallMs);
    addRows(lib, wname, r, lib);
  }
}

/** What caps PyTorch at AVX2: ATen's kernels, MKL's sgemm and oneDNN's. */
const TORCH_AVX2_ENV = { ATEN_CPU_CAPABILITY: 'avx2', MKL_ENABLE_INSTRUCTIONS: 'AVX2', ONEDNN_MAX_CPU_ISA: 'AVX2' };

// The AVX2 pass: gyre's rows again, on its AVX2 code, and its baselines on theirs: PyTorch
// capped by its own switches (its kernels, MKL's and oneDNN's) and, under the preload,
// onnxruntime too (it has no switch of its own).
if (avx2Pass && libraries.includes('gyre')) {
  for (const wname of workloads) {
    const ort = avx2Preload.preload && libraries.includes('onnxruntime');
    const torchEnv = { ...AVX2_ENV, ...TORCH_AVX2_ENV };
    const tasks = [
      [
        `gyre ${wname} [GYRE_SIMD=avx2]`,
        () => runTask({ kind: 'lib', lib: 'gyre', workload: wname, settings: SETTINGS }, { ...AVX2_ENV, GYRE_SIMD: 'avx2' }),
      ],
      ...(ort
        ? [
            [
              `onnxruntime ${wname} [AVX2]`,
              () => runTask({ kind: 'lib', lib: 'onnxruntime', workload: wname, settings: SETTINGS }, AVX2_ENV),
            ],
          ]
        : []),
      ...(torch.available ? [[`pytorch ${wname} [AVX2]`, () => torchTask(wname, torchEnv)]] : []),
    ];
    const rounded = await inRounds(tasks);
    addRows('gyre', wname, medianRound(rounded, `gyre ${wname} [GYRE_SIMD=avx2]`), 'gyre [GYRE_SIMD=avx2]');
    if (ort) {
      addRows('onnxruntime', wname, medianRound(rounded, `onnxruntime ${wname} [AVX2]`), 'onnxruntime [AVX2]', {
        simd: 'avx2',
        env: { LD_PRELOAD: avx2Preload.preload },
      });
    }
    if (torch.available) {
      const shown = { ...TORCH_AVX2_ENV, ...(avx2Preload.preload ? { LD_PRELOAD: avx2Preload.preload } : {}) };
      addRows('pytorch', wname, medianRound(rounded, `pytorch ${wname} [AVX2]`), 'pytorch [AVX2]', { simd: 'avx2', env: shown });
    }
  }
}

// gyre's 1024³ product, the streaming latency and the memory peak go through gyre's
// functional API and stream.step; each thread count gets its own process, with
// RAYON_NUM_THREADS and GYRE_NUM_THREADS set as well as setNumThreads, so that whatever pool a
// call runs on has that size.
const extras = {};
async function extra(kind, { threads, batches, simd } = {}) {
  const label =
    `gyre ${kind}` +
    (threads ? ` (${threads} thread${threads > 1 ? 's' : ''})` : '') +
    (batches ? ` (${batches} batch${batches > 1 ? 'es' : ''})` : '') +
    (simd ? ` [GYRE_SIMD=${simd}]` : '');
  log(`${label} ...`);
  const settings = { ...SETTINGS, ...(threads ? { threads: [threads] } : {}), ...(batches ? { memoryBatches: batches } : {}) };
  const env = {
    ...(threads ? { RAYON_NUM_THREADS: String(threads), GYRE_NUM_THREADS: String(threads) } : {}),
    ...(simd ? { ...AVX2_ENV, GYRE_SIMD: simd } : {}),
  };
  const r = await runTask({ kind, settings }, env);
  taskWallMs[label] = Math.round(r.wallMs);
  if (!r.ok) {
    failures.push({ library: 'gyre', workload: label.slice('gyre '.length), error: r.error });
    log(`  FAILED: ${r.error.split('\n')[0]}`);
    return;
  }
  extras[kind] = Array.isArray(r.result) ? [...(extras[kind] ?? []), ...r.result] : r.result;
}

// The roofs that are not gyre's: numpy's sgemm (when a python has numpy), the Rust crates'
// sgemm and the FMA probe (examples/roof.rs, built here).
const roofs = { sgemm: [], sgemmMeasured: [], fma: [], numpyPython: null, notes: [] };
async function externalRoofs() {
  const candidates = [...new Set([options.torchPython, 'python3'].filter(Boolean))];
  roofs.numpyPython =
    candidates.find((py) => spawnSync(py, ['-c', 'import numpy'], { stdio: 'ignore', timeout: 60_000 }).status === 0) ?? null;
  if (roofs.numpyPython) {
    // At the CPU's own level, and under the AVX2 preload (OpenBLAS then picks its Haswell
    // kernels: the AVX2 rows' roof).
    for (const simd of [levels[0], ...(avx2Preload.preload ? ['avx2'] : [])]) {
      for (const threads of SETTINGS.threads) {
        const at = `${threads} thread${threads > 1 ? 's' : ''}${simd === 'avx2' && levels[0] !== 'avx2' ? ', AVX2' : ''}`;
        log(`numpy sgemm 1024³ (${at}, ${roofs.numpyPython}) ...`);
        const t = String(threads);
        const r = await runProcess(roofs.numpyPython, [path.join(here, 'numpy_sgemm.py'), String(SETTINGS.roofRounds)], {
          env: { OPENBLAS_NUM_THREADS: t, OMP_NUM_THREADS: t, MKL_NUM_THREADS: t, ...(simd === levels[0] ? {} : AVX2_ENV) },
        });
        taskWallMs[`numpy sgemm (${at})`] = Math.round(r.wallMs);
        if (r.ok) roofs.sgemmMeasured.push({ ...r.result, threads, ...(simd ? { simd } : {}) });
        else failures.push({ library: 'numpy', workload: `sgemm 1024³ (${at})`, error: r.error });
      }
    }
  } else roofs.notes.push(`no python with numpy (tried ${candidates.join(', ')}): the sgemm roof is the faster Rust crate`);

  log('building the roof probe (cargo build --release -p gyre-core --example roof) ...');
  const cargo = ['--release', '-q', '-p', 'gyre-core', '--example', 'roof'];
  const build = spawnSync('cargo', ['build', ...cargo], { cwd: root, encoding: 'utf8', timeout: 900_000 }); // a first build compiles the gemm crate
  if (build.status !== 0) {
    const error = build.error ? build.error.message : (build.stderr ?? '').trim().split('\n').slice(-5).join(' | ');
    failures.push({ library: 'roof', workload: 'cargo build --example roof', error });
    log(`  FAILED: ${error}`);
  } else {
    log('roof probe: Rust sgemm 1024³ and FMA peak ...');
    const r = await runProcess(
      'cargo',
      ['run', ...cargo, '--', '--threads', SETTINGS.threads.join(','), '--rounds', String(SETTINGS.roofRounds)],
      {
        prefix: '',
      },
    );
    taskWallMs['roof probe'] = Math.round(r.wallMs);
    if (r.ok) {
      roofs.sgemmMeasured.push(...r.result.sgemm);
      roofs.fma = r.result.fma;
      for (const f of roofs.fma) log(`  FMA ${f.width} ${f.threads} thr  ${f.gflops.toFixed(1)} GFLOP/s`);
    } else failures.push({ library: 'roof', workload: 'roof probe', error: r.error });
  }
  for (const x of roofs.sgemmMeasured) log(`  sgemm ${x.library} ${x.threads} thr  ${x.gflops.toFixed(1)} GFLOP/s`);
  // The roof at each level: numpy where it ran (at that level when it ran there, else at the
  // CPU's own), else the faster Rust crate.
  for (const simd of levels.length ? levels : [null]) {
    for (const threads of SETTINGS.threads) {
      const at = roofs.sgemmMeasured.filter((x) => x.threads === threads);
      const numpy =
        at.find((x) => x.library === 'numpy' && (x.simd ?? null) === simd) ??
        at.find((x) => x.library === 'numpy' && (x.simd ?? null) === (levels[0] ?? null));
      const rust = at.filter((x) => x.library !== 'numpy').sort((a, b) => b.gflops - a.gflops)[0];
      const pick = numpy ?? rust;
      if (pick)
        roofs.sgemm.push({
          simd,
          threads,
          gflops: pick.gflops,
          library: pick.library,
          source:
            pick.library === 'numpy'
              ? `numpy ${pick.numpy} (${pick.openblas?.corename ? `OpenBLAS, ${pick.openblas.corename} kernels` : (pick.blas ?? 'its BLAS')})`
              : `${pick.library} (faster Rust crate)`,
        });
    }
  }
}

if (libraries.includes('gyre')) {
  for (const simd of levels) {
    for (const threads of SETTINGS.threads) await extra('product', { threads, simd: simd === simdLevel ? undefined : simd });
  }
  await externalRoofs();
  for (const threads of SETTINGS.threads) await extra('stream', { threads });
  // Each fit in its own process: one batch (what training one batch holds) and, in a full
  // run, several (fit's copy of the whole training set grows with it).
  for (const batches of SETTINGS.memoryBatches) await extra('memory', { batches });
  // The encoder–decoder: each thread count in its own process.
  for (const threads of SETTINGS.threads) await extra('seq2seq', { threads });
  for (const threads of SETTINGS.threads) await extra('attention', { threads });
}
// The same encoder–decoder in TensorFlow.js, on each of its backends that was asked for.
for (const backend of ['cpu', 'wasm'].filter((b) => libraries.includes(`tfjs-${b}`))) {
  const label = `tfjs-${backend} attention encoder–decoder`;
  log(`${label} ...`);
  const r = await runTask({ kind: 'attention-tfjs', backend, settings: SETTINGS });
  taskWallMs[label] = Math.round(r.wallMs);
  if (r.ok) extras.attention = [...(extras.attention ?? []), ...r.result];
  else {
    failures.push({ library: `tfjs-${backend}`, workload: 'attention encoder–decoder', error: r.error });
    log(`  FAILED: ${r.error.split('\n')[0]}`);
  }
}

// Ratios: gyre at a level and the same thread count (1 for the single-threaded baselines) ÷ the row.
const gyreRow = (workload, mode, threads, simd = simdLevel) =>
  rows.find((r) => r.library === 'gyre' && r.simd === simd && r.workload === workload && r.mode === mode && r.threads === threads);
for (const r of rows) {
  if (r.library === 'gyre') continue;
  r.gyreRatios = {};
  for (const simd of levels) {
    // A baseline measured at one level (PyTorch capped to AVX2) is set against gyre at that level
    // only, and replaces the uncapped one there (gyre's WebAssembly rows, at simd128, against
    // native gyre at each level).
    if (r.simd && r.simd !== simd && r.library !== 'gyre-wasm') continue;
    if (!r.simd && rows.some((y) => y.library === r.library && y.workload === r.workload && y.simd === simd)) continue;
    const g = gyreRow(r.workload, r.mode, r.threads, simd) ?? gyreRow(r.workload, r.mode, 1, simd);
    if (g) r.gyreRatios[simd] = g.seqPerSec / r.seqPerSec;
    if (g && simd === simdLevel) {
      r.gyreThreads = g.threads;
      r.gyreRatio = g.seqPerSec / r.seqPerSec;
    }
  }
}

// gyre's WebAssembly build ÷ TensorFlow.js' WebAssembly backend, on 1 and 2 threads (tfjs-wasm
// runs once, on its own XNNPACK thread count).
const wasmRatios = [];
for (const wname of workloads) {
  for (const mode of ['inference', 'training']) {
    const tfjs = rows.find((r) => r.library === 'tfjs-wasm' && r.workload === wname && r.mode === mode);
    const wasm = (threads) =>
      rows.find((r) => r.library === 'gyre-wasm' && r.workload === wname && r.mode === mode && r.threads === threads);
    const one = wasm(1);
    const two = wasm(2);
    const nativeOver = (row, threads) => {
      const native = row && gyreRow(wname, mode, threads);
      return native ? native.seqPerSec / row.seqPerSec : null;
    };
    if (!one && !two) continue;
    wasmRatios.push({
      workload: wname,
      mode,
      gyreWasm: { 1: one?.seqPerSec ?? null, 2: two?.seqPerSec ?? null },
      tfjsWasm: tfjs?.seqPerSec ?? null,
      tfjsWasmThreads: tfjs?.threads ?? null,
      ratio: { 1: tfjs && one ? one.seqPerSec / tfjs.seqPerSec : null, 2: tfjs && two ? two.seqPerSec / tfjs.seqPerSec : null },
      // Native gyre (its default level) ÷ its WebAssembly build, same threads.
      nativeOverWasm: { 1: nativeOver(one, 1), 2: nativeOver(two, 2) },
    });
  }
}

// gyre's 2-thread ÷ 1-thread speedup, at each level.
const speedups = [];
for (const simd of levels) {
  for (const wname of workloads) {
    for (const mode of ['inference', 'training']) {
      const one = gyreRow(wname, mode, 1, simd);
      const two = gyreRow(wname, mode, 2, simd);
      if (one && two)
        speedups.push({
          simd,
          workload: wname,
          mode,
          oneThread: one.seqPerSec,
          twoThreads: two.seqPerSec,
          speedup: two.seqPerSec / one.seqPerSec,
        });
    }
  }
}

// gyre's 1024³ product and lstm-l training as fractions of the roofs, per level and threads.
const widest = roofs.fma[0]?.width ?? null; // the probe measures the widest first
const roofFractions = [];
for (const simd of levels) {
  for (const threads of SETTINGS.threads) {
    const product = (extras.product ?? []).find((p) => p.simd === simd && p.threads === threads);
    const training = gyreRow('lstm-l', 'training', threads, simd);
    const sgemm = roofs.sgemm.find((x) => x.threads === threads && x.simd === simd);
    const fmaOwn = roofs.fma.find((x) => x.width === simd && x.threads === threads);
    const fmaWidest = roofs.fma.find((x) => x.width === widest && x.threads === threads);
    const frac = (a, b) => (a != null && b ? a / b : null);
    roofFractions.push({
      simd,
      threads,
      productGflops: product?.gflops ?? null,
      trainingGflops: training?.gflops ?? null,
      sgemmRoofGflops: sgemm?.gflops ?? null,
      sgemmRoofSource: sgemm?.source ?? null,
      fmaPeakGflops: fmaOwn?.gflops ?? null,
      fmaPeakWidth: fmaOwn?.width ?? null,
      fmaWidestGflops: fmaWidest?.gflops ?? null,
      productOfSgemm: frac(product?.gflops, sgemm?.gflops),
      productOfFma: frac(product?.gflops, fmaOwn?.gflops),
      trainingOfSgemm: frac(training?.gflops, sgemm?.gflops),
      trainingOfFma: frac(training?.gflops, fmaOwn?.gflops),
    });
  }
}

// The table the README's Benchmarks section is made from: per level, gyre's seq/s on 1 and 2
// threads and gyre ÷ each baseline (onnxruntime and PyTorch at 1 and 2 threads).
const readmeTable = levels.map((simd) => ({
  simd,
  rows: workloads.flatMap((wname) =>
    ['inference', 'training'].flatMap((mode) => {
      const one = gyreRow(wname, mode, 1, simd);
      const two = gyreRow(wname, mode, 2, simd);
      if (!one && !two) return [];
      const ratio = (lib, threads) => {
        const x = rows.find(
          (y) =>
            y.library === lib &&
            y.workload === wname &&
            y.mode === mode &&
            (threads == null || y.threads === threads) &&
            y.gyreRatios?.[simd] != null,
        );
        return x?.gyreRatios?.[simd] ?? null;
      };
      return [
        {
          workload: wname,
          mode,
          gyre: { 1: one?.seqPerSec ?? null, 2: two?.seqPerSec ?? null },
          'brain.js': ratio('brain.js'),
          'tfjs-cpu': ratio('tfjs-cpu'),
          'tfjs-wasm': ratio('tfjs-wasm'),
          onnxruntime: { 1: ratio('onnxruntime', 1), 2: ratio('onnxruntime', 2) },
          pytorch: { 1: ratio('pytorch', 1), 2: ratio('pytorch', 2) },
        },
      ];
    }),
  ),
}));

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
  levels,
  avx2Pass,
  avx2Cpu: avx2Pass ? { preload: avx2Preload.preload, reason: avx2Preload.reason ?? null } : null,
  torch: { ...torch, howToEnable: torch.available ? null : TORCH_HOW },
  gyreWasm: { ...gyreWasm, howToEnable: gyreWasm.available ? null : WASM_HOW },
  wasmRatios,
  workloads: Object.fromEntries(
    workloads.map((w) => [
      w,
      { ...WORKLOADS[w], parameters: parameterCount(WORKLOADS[w]), forwardFlopsPerSequence: forwardFlopsPerSequence(WORKLOADS[w]) },
    ]),
  ),
  rows,
  speedups,
  readmeTable,
  gyreProduct: extras.product ?? null,
  roofs,
  roofFractions,
  stream: extras.stream ?? null,
  memory: extras.memory ?? null,
  seq2seq: extras.seq2seq ?? null,
  attention: extras.attention ?? null,
  failures,
  skipped,
  taskWallMs,
};
writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(renderMarkdown(results, path.relative(process.cwd(), options.out) || options.out));
log(`done in ${durationS.toFixed(0)} s; wrote ${options.out}`);
