// Event-loop delay while model.fit keeps every core busy.
// Run: npm run bench:event-loop  (after npm install). Prints p50/p99/max delay and the
// training throughput; timings are this machine's, compare only within one run.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import os from 'node:os';
import gyre from '../dist/index.js';

const { sequential, getNumThreads } = gyre;
const samples = 512;
const steps = 50;
const features = 32;
let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648 - 0.5;
};
const x = { data: Float32Array.from({ length: samples * steps * features }, rand), shape: [samples, steps, features] };
const y = Float32Array.from({ length: samples * steps * 8 }, rand);

const model = sequential({
  input: { features },
  layers: [
    { type: 'lstm', hiddenSize: 128, numLayers: 2 },
    { type: 'dense', units: 8 },
  ],
  seed: 1,
});

const delay = monitorEventLoopDelay({ resolution: 1 });
let ticks = 0;
const timer = setInterval(() => ticks++, 5); // work the event loop is expected to keep doing
delay.enable();
const started = performance.now();
let batches = 0;
await model.fit(x, y, {
  loss: 'mse',
  epochs: 3,
  batchSize: 64,
  onProgress: (e) => {
    if (e.kind === 'batch') batches++;
  },
});
const seconds = (performance.now() - started) / 1000;
delay.disable();
clearInterval(timer);
const ms = (ns) => (ns / 1e6).toFixed(2);
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, gyre threads: ${getNumThreads()}`);
console.log(`fit: ${batches} batches, ${((samples * 3) / seconds).toFixed(0)} sequences/s over ${seconds.toFixed(1)} s`);
console.log(`event-loop delay during fit: p50 ${ms(delay.percentile(50))} ms, p99 ${ms(delay.percentile(99))} ms, max ${ms(delay.max)} ms`);
console.log(`5 ms timer fired ${ticks} times (${(((ticks * 5) / (seconds * 1000)) * 100).toFixed(0)}% of the ideal)`);
