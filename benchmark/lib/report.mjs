// The markdown report printed by run.mjs, built from the same object it writes as JSON.

const MB = 1024 * 1024;

function num(v, digits) {
  if (v == null || !Number.isFinite(v)) return '–';
  if (digits !== undefined) return v.toFixed(digits);
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A markdown table; `align` has one 'l' or 'r' per column (default: first left, others right). */
function table(header, lines, align = header.map((_, i) => (i === 0 ? 'l' : 'r')).join('')) {
  const rule = header.map((_, i) => (align[i] === 'r' ? '---:' : '---'));
  return [`| ${header.join(' | ')} |`, `| ${rule.join(' | ')} |`, ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n');
}

export function renderMarkdown(r, outPath) {
  const out = [];
  const m = r.machine;
  out.push(`## gyre benchmark (${r.mode} run)`);
  out.push('');
  out.push(
    `Machine: ${m.cpu}, ${m.cores} cores (available parallelism ${m.availableParallelism}), ${m.memoryGiB} GiB, ${m.platform}; Node ${m.node}. ` +
      `Load average ${m.loadAverageAtStart.join(' / ')} at start, ${m.loadAverageAtEnd.join(' / ')} at end. ${r.date}, ${r.durationS.toFixed(0)} s.`,
  );
  out.push(
    `Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v ?? '?'}`)
      .join(', ')}.`,
  );
  out.push('');
  out.push(
    'seq/s: sequences per second (median repetition). GFLOP/s: effective, recurrence matrix FLOPs only, steps·2·G·H·(I+H) per sequence (G = 4 LSTM, 3 GRU), ×3 for training. ' +
      'gyre ÷ it: gyre’s seq/s at the same thread count (1 for single-threaded baselines) over this row’s, > 1 = gyre faster. ' +
      'samples: timed repetitions × sequences each, after a warm-up; "warm-up only": one unit already exceeded half the time budget, its single run is the sample.',
  );
  out.push('');

  const order = ['gyre', 'onnxruntime', 'tfjs-wasm', 'tfjs-cpu', 'brain.js'];
  const rows = [...r.rows].sort(
    (a, b) =>
      Object.keys(r.workloads).indexOf(a.workload) - Object.keys(r.workloads).indexOf(b.workload) ||
      (a.mode === b.mode ? 0 : a.mode === 'inference' ? -1 : 1) ||
      order.indexOf(a.library) - order.indexOf(b.library) ||
      a.threads - b.threads,
  );
  out.push(
    table(
      ['workload', 'mode', 'library', 'threads', 'seq/s', 'GFLOP/s', 'gyre ÷ it', 'samples', 'notes'],
      rows.map((x) => [
        x.workload,
        x.mode,
        x.library,
        String(x.threads),
        num(x.seqPerSec),
        num(x.gflops),
        x.library === 'gyre' ? '' : x.gyreRatio != null ? `${num(x.gyreRatio)}×` : '–',
        `${x.reps} × ${x.seqsPerRep}${x.warmupOnly ? ' (warm-up only)' : ''}`,
        x.note ?? '',
      ]),
      'lllrrrrrl',
    ),
  );
  out.push('');

  // gyre ÷ each baseline, one line per workload and mode.
  const baselines = [
    ['onnxruntime', 1],
    ['onnxruntime', 2],
    ['tfjs-wasm', null],
    ['tfjs-cpu', null],
    ['brain.js', null],
  ].filter(([lib]) => r.rows.some((x) => x.library === lib));
  const ratioLines = [];
  for (const w of Object.keys(r.workloads)) {
    for (const mode of ['inference', 'training']) {
      const cells = baselines.map(([lib, threads]) => {
        const x = r.rows.find(
          (y) => y.library === lib && y.workload === w && y.mode === mode && (threads == null || y.threads === threads),
        );
        return x?.gyreRatio != null ? `${num(x.gyreRatio)}×` : '–';
      });
      if (cells.some((c) => c !== '–')) ratioLines.push([w, mode, ...cells]);
    }
  }
  if (ratioLines.length) {
    out.push('### gyre ÷ each baseline (seq/s ratio, gyre at the same thread count; > 1 = gyre faster)');
    out.push('');
    out.push(
      table(
        ['workload', 'mode', ...baselines.map(([lib, t]) => (t == null ? lib : `${lib} ${t} thr`))],
        ratioLines,
        `ll${'r'.repeat(baselines.length)}`,
      ),
    );
    out.push('');
  }

  if (r.speedups.length) {
    out.push('### gyre: 2 threads ÷ 1 thread');
    out.push('');
    out.push(
      table(
        ['workload', 'mode', '1 thread seq/s', '2 threads seq/s', 'speedup'],
        r.speedups.map((s) => [s.workload, s.mode, num(s.oneThread), num(s.twoThreads), `${num(s.speedup, 2)}×`]),
        'llrrr',
      ),
    );
    out.push('');
  }

  if (r.roof) {
    out.push('### Roof: sgemm 1024×1024×1024 through gyre');
    out.push('');
    out.push(
      'lstmForward with batch 1024, 1 step, input 1024, hidden 256: its input projection is one [1024×1024]×[1024×1024] product (gyre’s SIMD matrix product, the one it uses for f32; benchmark/gemm.md compares it with matrixmultiply and the gemm crate). ' +
        'The same call with input size 1 does everything else; the product time is the median difference of alternating calls. Roof = 2·1024³ FLOPs ÷ that time. ' +
        'The functional API runs on rayon’s global thread pool, which gyre.setNumThreads does not size (gyre 0.1.0), so each thread count is measured in its own process with RAYON_NUM_THREADS set.',
    );
    out.push('');
    out.push(
      table(
        [
          'threads',
          'roof GFLOP/s',
          'product ms',
          'whole call ms',
          'call without product ms',
          'lstm-l training GFLOP/s',
          'fraction of roof',
        ],
        r.roof.map((x) => {
          const f = r.roofFraction.find((y) => y.threads === x.threads);
          return [
            String(x.threads),
            num(x.gflops),
            num(x.productMs),
            num(x.fullCallMs),
            num(x.baseCallMs),
            f ? num(f.trainingGflops) : '–',
            f ? `${(f.fraction * 100).toFixed(1)} %` : '–',
          ];
        }),
      ),
    );
    out.push('');
  }

  if (r.stream) {
    out.push('### Streaming: one `stream.step` (LSTM input 32, hidden 128, dense 32, batch 1)');
    out.push('');
    out.push(
      'Each call timed alone with process.hrtime, JS ↔ native crossing and input checks included, after 1,000 warm-up steps; one process per thread count (RAYON_NUM_THREADS, as for the roof).',
    );
    out.push('');
    out.push(
      table(
        ['threads', 'steps timed', 'median µs', 'p99 µs', 'mean µs'],
        r.stream.map((x) => [String(x.threads), String(x.steps), num(x.medianUs, 1), num(x.p99Us, 1), num(x.meanUs, 1)]),
      ),
    );
    out.push('');
  }

  // One entry per fit measured (an object in results written before there were several).
  const memory = r.memory ? [r.memory].flat() : [];
  if (memory.length > 0) {
    const x0 = memory[0];
    out.push(`### Peak memory: ${x0.workload} training (gyre, ${x0.threads} threads; one fit per column, each in its own process)`);
    out.push('');
    const row = (label, f) => [label, ...memory.map(f)];
    const mib = (v) => num(v / MB, 1);
    out.push(
      table(
        ['quantity, MiB', ...memory.map((x) => `fit over ${x.batches} batch${x.batches > 1 ? 'es' : ''}`)],
        [
          row('sequences', (x) => String(x.sequences)),
          row('RSS before fit (data and model built)', (x) => mib(x.baselineRss)),
          row('peak RSS during fit (samples every 2 ms and maxRSS)', (x) => mib(x.peakRss)),
          row('measured increase', (x) => mib(x.measuredDelta)),
          row(`weights, gradients, Adam m and v: 4·P·4 B, P = ${x0.parameters.toLocaleString('en-US')}`, (x) =>
            mib(x.estimate.optimizerBytes),
          ),
          row('activations BPTT reads: B·T·(I + G·H + 2·H + 2·O)·4 B', (x) => mib(x.estimate.activationBytes)),
          row('required by training (sum of the two above)', (x) => mib(x.estimate.requiredBytes)),
          row('the native copy of the training set fit makes: S·T·(I + O)·4 B', (x) => mib(x.estimate.dataCopyBytes)),
          row('measured ÷ required', (x) => `${num(x.measuredDelta / x.estimate.requiredBytes, 2)}×`),
          row('(measured − copy) ÷ required', (x) => `${num((x.measuredDelta - x.estimate.dataCopyBytes) / x.estimate.requiredBytes, 2)}×`),
          row('gyre model.nativeBytes after fit', (x) => mib(x.nativeBytesAfterFit)),
        ],
        `l${'r'.repeat(memory.length)}`,
      ),
    );
    out.push('');
    out.push(`Formula: ${x0.estimate.formula}.`);
    out.push('');
  }

  out.push('### Not measured');
  out.push('');
  for (const f of r.failures) out.push(`- ${f.library} ${f.workload}: FAILED: ${f.error.split('\n')[0]}`);
  for (const s of r.skipped) out.push(`- ${s.library} ${s.workload}: ${s.reason}`);
  out.push('- onnxruntime training: onnxruntime-node runs inference only');
  out.push('');
  out.push(`All numbers: ${outPath}.`);
  out.push('');
  return out.join('\n');
}
