// onnxruntime's own matrix product (MLAS) on the shapes of the workloads' products, timed by
// onnxruntime's profiler (the MatMul node's kernel time alone: no session.run overhead, no copy
// of the output to JavaScript), one thread. The model is a gyre `dense` layer exported with
// `toOnnx` (a MatMul + Add over [1, m, k] inputs), so `k × n` is its weight.
//
//   node benchmark/ort_products.mjs                                              # the CPU's best level
//   LD_PRELOAD=target/bench/avx2_cpu.so node benchmark/ort_products.mjs         # its AVX2 + FMA code
//
// (`target/bench/avx2_cpu.so` is the suite's CPUID shim, built by `npm run bench`: onnxruntime
// picks its kernels from CPUID and has no switch of its own.) Prints one line per shape:
// median kernel time in µs and GFLOP/s = 2·m·k·n / that time. benchmark/gemm.md sets these
// beside gyre's product on the same shapes (`examples/gemm_compare.rs`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import gyre from '../dist/index.js';

const SHAPES = [
  ['sgemm 1024³', 1024, 1024, 1024],
  ['lstm-m recurrent step', 32, 256, 1024],
  ['lstm-m input projection', 2048, 128, 1024],
  ['lstm-m readout', 2048, 256, 128],
  ['lstm-l recurrent step', 64, 512, 2048],
  ['lstm-l input projection', 6400, 512, 2048],
];

/** Median MatMul kernel time (µs) of `reps` runs of an [m, k] × [k, n] product. */
async function kernelMicros(m, k, n, reps) {
  const model = gyre.sequential({ input: { features: k }, layers: [{ type: 'dense', units: n }], seed: 1 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-ort-'));
  const session = await ort.InferenceSession.create(gyre.toOnnx(model), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'profile'),
  });
  model.dispose();
  const x = new Float32Array(m * k).map((_, i) => Math.sin(i * 0.37));
  const feeds = {
    input: new ort.Tensor('float32', x, [1, m, k]),
    sequence_lens: new ort.Tensor('int32', new Int32Array([m]), [1]),
  };
  for (let i = 0; i < reps; i++) await session.run(feeds);
  session.endProfiling();
  await session.release();
  const [file] = fs.readdirSync(dir);
  const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  // The first run is a warm-up; the rest are timed.
  const times = events
    .filter((e) => e.cat === 'Node' && /MatMul.*_kernel_time$/.test(e.name))
    .slice(1)
    .map((e) => e.dur)
    .sort((a, b) => a - b);
  return times[times.length >> 1];
}

for (const [name, m, k, n] of SHAPES) {
  const flops = 2 * m * k * n;
  const reps = Math.max(5, Math.min(400, Math.round(2e10 / flops)));
  const us = await kernelMicros(m, k, n, reps);
  console.log(`${name} (${m} × ${k} × ${n}): ${us} µs, ${(flops / us / 1e3).toFixed(1)} GFLOP/s`);
}
