// One benchmark task in its own process (run.mjs starts one per library and workload), so that
// libraries never share a heap, a thread pool or a TensorFlow.js backend, a crash or a hang
// only loses its own rows, and peak RSS is that of the task alone.
//
//   node benchmark/lib/worker.mjs '<task JSON>'
//
// Task: { kind: 'lib', lib, workload, settings } | { kind: 'product' | 'stream' | 'memory' | 'seq2seq' | 'attention', settings }
// | { kind: 'attention-tfjs', backend: 'cpu' | 'wasm', settings }
// | { kind: 'info' } (gyre's SIMD level and thread count in this process's environment).
// Prints one line `RESULT <json>` on stdout; anything else on stdout/stderr is diagnostics.
import { WORKLOADS } from './workloads.mjs';

const task = JSON.parse(process.argv[2]);
const s = task.settings;

async function main() {
  switch (task.kind) {
    case 'lib': {
      const w = WORKLOADS[task.workload];
      switch (task.lib) {
        case 'gyre':
          return (await import('./gyre.mjs')).bench(w, s);
        case 'onnxruntime':
          return (await import('./onnx.mjs')).bench(w, s);
        case 'tfjs-cpu':
          return (await import('./tfjs.mjs')).bench(w, s, 'cpu');
        case 'tfjs-wasm':
          return (await import('./tfjs.mjs')).bench(w, s, 'wasm');
        case 'brain.js':
          return (await import('./brain.mjs')).bench(w, s);
        default:
          throw new Error(`unknown library ${task.lib}`);
      }
    }
    case 'info':
      return (await import('./gyre.mjs')).info();
    case 'product':
      return (await import('./gyre.mjs')).product1024(s);
    case 'stream':
      return (await import('./gyre.mjs')).streamLatency(s);
    case 'memory':
      return (await import('./gyre.mjs')).memoryPeak(s);
    case 'seq2seq':
      return (await import('./gyre.mjs')).seq2seqBench(s);
    case 'attention':
      return (await import('./gyre.mjs')).attentionGraphBench(s);
    case 'attention-tfjs':
      return (await import('./tfjs.mjs')).attentionBench(s, task.backend);
    default:
      throw new Error(`unknown task kind ${task.kind}`);
  }
}

try {
  const result = await main();
  process.stdout.write(`RESULT ${JSON.stringify({ ok: true, result })}\n`);
} catch (err) {
  process.stdout.write(`RESULT ${JSON.stringify({ ok: false, error: String(err?.stack ?? err) })}\n`);
}
// tfjs-wasm and onnxruntime may keep handles open; the result is out, so end here.
process.exit(0);
