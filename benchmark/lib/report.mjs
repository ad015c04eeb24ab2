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
  const ci = m.cpuInfo;
  if (ci || m.simdLevel) {
    const parts = [];
    if (ci?.family != null) parts.push(`family ${ci.family} model ${ci.model} stepping ${ci.stepping}`);
    if (ci?.simdFlags?.length) parts.push(`SIMD flags ${ci.simdFlags.join(' ')}`);
    if (ci?.threadsPerCore != null)
      parts.push(`${ci.threadsPerCore} thread(s) per core as the OS sees it${ci.hypervisor ? ' (a virtual machine)' : ''}`);
    out.push(
      `CPU: ${ci?.modelName ?? m.cpu}${parts.length ? `; ${parts.join('; ')}` : ''}. ` +
        `gyre's SIMD level: ${m.simdLevel ?? '–'}${r.avx2Pass ? `; its rows are measured again with GYRE_SIMD=avx2 (see below)${r.avx2Cpu?.preload ? `, and onnxruntime's, PyTorch's and numpy's with the CPU shown to them as AVX2 + FMA only (${r.avx2Cpu.preload} preloaded: CPUID faulting)` : `; onnxruntime stays at its best there (${r.avx2Cpu?.reason ?? 'no AVX2 shim'})`}` : ''}.`,
    );
  }
  out.push(
    `Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v ?? '?'}`)
      .join(', ')}.`,
  );
  const tv = r.torch?.versions;
  if (tv)
    out.push(
      `PyTorch ${tv.torch} (${r.torch.python}, Python ${tv.python}; CPU capability ${tv.cpuCapability ?? '?'}, ${tv.parallelBackend ?? '?'} threads, oneDNN ${tv.mkldnn ? 'available' : 'absent'}; its default threading, torch.set_num_threads per row).`,
    );
  out.push('');
  out.push(
    `seq/s: sequences per second (median repetition${(r.settings?.rounds ?? 1) > 1 ? `; gyre, onnxruntime and PyTorch ran ${r.settings.rounds} times on each workload, alternated, and their rows are the median run` : ''}). GFLOP/s: effective, recurrence matrix FLOPs only, steps·2·G·H·(I+H) per sequence (G = 4 LSTM, 3 GRU), ×3 for training. ` +
      'gyre ÷ it: gyre’s seq/s (its default SIMD level) at the same thread count (1 for single-threaded baselines) over this row’s, > 1 = gyre faster. ' +
      'samples: timed repetitions × sequences each, after a warm-up; "warm-up only": one unit already exceeded half the time budget (PyTorch: its warm-up repetition the whole budget), its single run is the sample.',
  );
  out.push('');

  const levels = r.levels ?? [];
  const label = (x) =>
    x.library === 'gyre' && levels.length && x.simd !== levels[0]
      ? `gyre [GYRE_SIMD=${x.simd}]`
      : x.library !== 'gyre' && x.simd
        ? `${x.library} [${x.simd.toUpperCase()}]`
        : x.library;
  // gyre ÷ a baseline row: at gyre's best level, or, for a row measured at one level (PyTorch
  // capped to AVX2), at that level.
  const ratioCell = (x) => {
    const ratio = x.gyreRatio ?? x.gyreRatios?.[x.simd];
    return ratio == null ? '–' : `${num(ratio)}×${x.simd ? ` (gyre ${x.simd})` : ''}`;
  };
  const order = ['gyre', 'gyre-wasm', 'onnxruntime', 'pytorch', 'tfjs-wasm', 'tfjs-cpu', 'brain.js'];
  const workloadOrder = Object.keys(r.workloads);
  const modeOrder = (mode) => (mode === 'inference' ? 0 : 1);
  // Placeholder rows where PyTorch was asked for but no python with torch was given.
  const torchMissing = r.torch?.requested && !r.torch.available;
  const placeholders = torchMissing
    ? workloadOrder.flatMap((workload) =>
        ['inference', 'training'].map((mode) => ({ workload, mode, library: 'pytorch', placeholder: true, threads: 0 })),
      )
    : [];
  const rows = [...r.rows, ...placeholders].sort(
    (a, b) =>
      workloadOrder.indexOf(a.workload) - workloadOrder.indexOf(b.workload) ||
      modeOrder(a.mode) - modeOrder(b.mode) ||
      order.indexOf(a.library) - order.indexOf(b.library) ||
      levels.indexOf(a.simd) - levels.indexOf(b.simd) ||
      a.threads - b.threads,
  );
  out.push(
    table(
      ['workload', 'mode', 'library', 'threads', 'seq/s', 'GFLOP/s', 'gyre ÷ it', 'samples', 'notes'],
      rows.map((x) =>
        x.placeholder
          ? [x.workload, x.mode, 'pytorch', '–', '–', '–', '–', '–', 'not run: needs --torch-python PATH (see Not measured)']
          : [
              x.workload,
              x.mode,
              label(x),
              String(x.threads),
              num(x.seqPerSec),
              num(x.gflops),
              x.library === 'gyre' ? '' : ratioCell(x),
              `${x.reps} × ${x.seqsPerRep}${x.warmupOnly ? ' (warm-up only)' : ''}`,
              x.note ?? '',
            ],
      ),
      'lllrrrrrl',
    ),
  );
  out.push('');

  // gyre ÷ each baseline, one line per workload and mode.
  const baselines = [
    ['onnxruntime', 1],
    ['onnxruntime', 2],
    ['pytorch', 1],
    ['pytorch', 2],
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
    out.push(
      `### gyre ÷ each baseline (seq/s ratio, gyre${levels.length ? ` at ${levels[0]}` : ''} and the same thread count; > 1 = gyre faster)`,
    );
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

  // The table the README's Benchmarks section is made from, one per SIMD level.
  for (const level of r.readmeTable ?? []) {
    if (!level.rows.length) continue;
    const pair = (p) =>
      p[1] == null && p[2] == null ? '–' : `${p[1] != null ? `${num(p[1])}×` : '–'} / ${p[2] != null ? `${num(p[2])}×` : '–'}`;
    const one = (v) => (v != null ? `${num(v)}×` : '–');
    const ws = r.workloads;
    const shape = (w) => `${w} (I ${ws[w].input}, H ${ws[w].hidden}, T ${ws[w].steps}, B ${ws[w].batch})`;
    const seen = new Set();
    out.push(
      `### README table: gyre at ${level.simd}${level.simd !== levels[0] ? ` (GYRE_SIMD=${level.simd} on this ${levels[0]} CPU: gyre's AVX2 code, not an AVX2 CPU's caches, ports and clocks)` : ''}`,
    );
    out.push('');
    out.push(
      'gyre seq/s on 1 / 2 threads; every other column is gyre ÷ that library (seq/s, > 1 = gyre faster; single-threaded baselines against gyre on 1 thread).' +
        (level.simd !== levels[0] && r.avx2Cpu?.preload
          ? ` onnxruntime and PyTorch here ran at ${level.simd.toUpperCase()} too: every process of this pass saw the CPU as AVX2 + FMA only (${r.avx2Cpu.preload} preloaded), and PyTorch was capped by its own switches as well (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA); TensorFlow.js and brain.js were not run again.`
          : level.simd !== levels[0] && level.rows.some((x) => x.pytorch?.[1] != null)
            ? ` PyTorch here ran capped to ${level.simd.toUpperCase()} too (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA); onnxruntime, TensorFlow.js and brain.js have no such switch and run at their best.`
            : ''),
    );
    out.push('');
    out.push(
      table(
        ['workload', 'mode', 'gyre seq/s (1 / 2 threads)', 'brain.js', 'tfjs-cpu', 'tfjs-wasm', 'onnxruntime (1 / 2)', 'PyTorch (1 / 2)'],
        level.rows.map((x) => {
          const first = !seen.has(x.workload);
          seen.add(x.workload);
          return [
            first ? shape(x.workload) : x.workload,
            x.mode,
            `${num(x.gyre[1])} / ${num(x.gyre[2])}`,
            one(x['brain.js']),
            one(x['tfjs-cpu']),
            one(x['tfjs-wasm']),
            x.mode === 'training' ? '—' : pair(x.onnxruntime),
            torchMissing ? 'not run¹' : pair(x.pytorch),
          ];
        }),
        'llrrrrrr',
      ),
    );
    out.push('');
    if (torchMissing) {
      out.push(`¹ ${r.torch.howToEnable}.`);
      out.push('');
    }
  }

  if (r.wasmRatios?.length) {
    out.push("### WebAssembly: gyre's WebAssembly build ÷ TensorFlow.js' WebAssembly backend");
    out.push('');
    out.push(
      'gyre-wasm: gyre-wasm32-wasi (simd128, worker threads) in Node; tfjs-wasm: @tensorflow/tfjs-backend-wasm (XNNPACK, its own thread count). ' +
        'Targets: training ≥ 3× on lstm-m and gru-m, inference ≥ 1× on every workload. Last column: native gyre (its default level) ÷ gyre-wasm, same threads.',
    );
    out.push('');
    const ratio = (v) => (v != null ? `${num(v)}×` : '–');
    out.push(
      table(
        [
          'workload',
          'mode',
          'gyre-wasm seq/s (1 / 2 threads)',
          'tfjs-wasm seq/s (threads)',
          'gyre-wasm ÷ tfjs-wasm (1 / 2)',
          'native ÷ wasm (1 / 2)',
        ],
        r.wasmRatios.map((x) => [
          x.workload,
          x.mode,
          `${num(x.gyreWasm[1])} / ${num(x.gyreWasm[2])}`,
          x.tfjsWasm != null ? `${num(x.tfjsWasm)} (${x.tfjsWasmThreads})` : '–',
          `${ratio(x.ratio[1])} / ${ratio(x.ratio[2])}`,
          `${ratio(x.nativeOverWasm[1])} / ${ratio(x.nativeOverWasm[2])}`,
        ]),
        'llrrrr',
      ),
    );
    out.push('');
  } else if (r.gyreWasm?.requested && !r.gyreWasm.available) {
    out.push(`gyre's WebAssembly rows were not run: ${r.gyreWasm.reason}; ${r.gyreWasm.howToEnable}.`);
    out.push('');
  }

  if (r.speedups.length) {
    out.push('### gyre: 2 threads ÷ 1 thread');
    out.push('');
    out.push(
      table(
        ['level', 'workload', 'mode', '1 thread seq/s', '2 threads seq/s', 'speedup'],
        r.speedups.map((s) => [s.simd ?? '', s.workload, s.mode, num(s.oneThread), num(s.twoThreads), `${num(s.speedup, 2)}×`]),
        'lllrrr',
      ),
    );
    out.push('');
  }

  const roofs = r.roofs;
  if (roofs && (roofs.sgemm.length || roofs.fma.length || r.gyreProduct)) {
    out.push('### Roofs that are not gyre’s, and gyre against them');
    out.push('');
    out.push(
      'sgemm roof: an f32 1024×1024×1024 product by numpy (its BLAS, OpenBLAS in numpy’s wheels) when a python with numpy is at hand, else the faster of the Rust crates `gemm` and matrixmultiply; median of single products after a warm-up. ' +
        'FMA peak: the core’s fused multiply-adds on registers only (independent chains, nothing from memory), at the CPU’s widest level and at AVX2 width; with 2 threads, both run the probe at once (summed rate); best of the rounds. ' +
        'Both come from outside gyre’s code: benchmark/numpy_sgemm.py and `cargo run --release -p gyre-core --example roof`.',
    );
    out.push('');
    const roofLines = [
      ...roofs.sgemm.map((x) => [
        `sgemm 1024³${x.simd && (r.levels ?? []).length > 1 ? ` (${x.simd} rows)` : ''}`,
        String(x.threads),
        num(x.gflops),
        x.source,
      ]),
      ...roofs.fma.map((x) => [
        `FMA peak, ${x.width} (${x.bits}-bit)`,
        String(x.threads),
        num(x.gflops),
        `median of the rounds ${num(x.medianGflops)}`,
      ]),
    ];
    if (roofLines.length) {
      out.push(table(['roof', 'threads', 'GFLOP/s', 'source'], roofLines, 'lrrl'));
      out.push('');
    }
    if (roofs.sgemmMeasured.length) {
      out.push('Every sgemm measured (the roof is numpy’s where it ran):');
      out.push('');
      out.push(
        table(
          ['library', 'threads', 'GFLOP/s (median)', 'best', 'ms per product', 'how'],
          roofs.sgemmMeasured.map((x) => [
            x.library === 'numpy' ? `numpy ${x.numpy}${x.openblas?.corename ? ` (OpenBLAS ${x.openblas.corename})` : ''}` : x.library,
            String(x.threads),
            num(x.gflops),
            num(x.bestGflops),
            num(x.productMs),
            x.how ?? '',
          ]),
          'lrrrrl',
        ),
      );
      out.push('');
    }
    for (const note of roofs.notes ?? []) out.push(`- ${note}`);
    if (roofs.notes?.length) out.push('');
    if (r.roofFractions?.length) {
      const pct = (v) => (v != null ? `${(v * 100).toFixed(1)} %` : '–');
      out.push(
        'gyre’s own 1024³ product (lstmForward with batch 1024, 1 step, input 1024, hidden 256: its input projection is that product, packing of the weight included; the same call with input size 1 does everything else, and the product time is the median difference of alternating calls) and gyre’s lstm-l training (effective GFLOP/s, the main table’s) as fractions of the sgemm roof and of the FMA peak at the width of gyre’s level:',
      );
      out.push('');
      out.push(
        table(
          [
            'gyre level',
            'threads',
            'gyre 1024³ GFLOP/s',
            '÷ sgemm roof',
            '÷ FMA peak',
            'lstm-l training GFLOP/s',
            '÷ sgemm roof',
            '÷ FMA peak',
            'sgemm roof',
            'FMA peak (width)',
          ],
          r.roofFractions.map((x) => [
            x.simd,
            String(x.threads),
            num(x.productGflops),
            pct(x.productOfSgemm),
            pct(x.productOfFma),
            num(x.trainingGflops),
            pct(x.trainingOfSgemm),
            pct(x.trainingOfFma),
            num(x.sgemmRoofGflops),
            x.fmaPeakGflops != null ? `${num(x.fmaPeakGflops)} (${x.fmaPeakWidth})` : '–',
          ]),
          'lrrrrrrrrr',
        ),
      );
      out.push('');
      if (r.avx2Pass) {
        out.push(
          'The avx2 rows are gyre’s AVX2 kernels run on this AVX-512 CPU (GYRE_SIMD=avx2): they show what that code reaches here, not what an AVX2 CPU (other caches, ports and clocks) would.',
        );
        out.push('');
      }
    }
  }

  if (r.stream) {
    out.push('### Streaming: one `stream.step` (LSTM input 32, hidden 128, dense 32, batch 1)');
    out.push('');
    out.push(
      'Each call timed alone with process.hrtime, JS ↔ native crossing and input checks included, after 1,000 warm-up steps; one process per thread count (RAYON_NUM_THREADS and GYRE_NUM_THREADS set).',
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

  if (r.seq2seq) {
    out.push('### Encoder–decoder (`Seq2Seq`): 2,048 letter → symbol pairs, bidirectional LSTM 128 → attention LSTM 256, batch 64');
    out.push('');
    out.push(
      'Training: median of one-epoch `Seq2Seq.train` runs (Adam, no validation) after a warm-up epoch; decoding: `transduce` of all 2,048 sources at once (maxLength 16), median of 3. One process per thread count. TensorFlow.js cannot express this model (no attention layer, input feeding or beam search); the model below is one it can.',
    );
    out.push('');
    out.push(
      table(
        ['threads', 'training pairs/s', 'greedy pairs/s', 'beam 5 pairs/s'],
        r.seq2seq.map((x) => [String(x.threads), num(x.trainingPairsPerSec, 0), num(x.greedyPairsPerSec, 0), num(x.beam5PairsPerSec, 0)]),
      ),
    );
    out.push('');
  }

  if (r.attention) {
    const gyreRows = r.attention.filter((x) => x.library === 'gyre');
    const others = r.attention.filter((x) => x.library !== 'gyre');
    const g1 = gyreRows.find((x) => x.threads === 1);
    out.push('### The encoder–decoder both express: gyre (a model graph) against TensorFlow.js (a functional model), training');
    out.push('');
    out.push(
      "Letters (26, embedding 64) → bidirectional LSTM 128 returning its states, joined forward first → LSTM decoder 256 over the shifted targets (41 ids, embedding 64) → Luong's dot attention over the encoder's outputs → [decoder; context] → softmax over 40 ids at each of 9 steps; 8 source steps, no masking, Adam 0.001, batch 64, cross-entropy. gyre: `graph()` and `fit`, median of one-epoch runs after a warm-up, one process per thread count; TensorFlow.js: `tf.model` of its layers (attention from `dot`, `softmax`, `dot`), `model.fit`, on fewer pairs (pairs/s is per pair). gyre's LSTMs carry PyTorch's two bias vectors (2,048 parameters more, the same FLOPs). Ratio: gyre on 1 thread ÷ the row.",
    );
    out.push('');
    out.push(
      table(
        ['library', 'threads', 'parameters', 'pairs per epoch', 'training pairs/s', 'gyre (1 thread) ÷ row'],
        [...gyreRows, ...others].map((x) => [
          x.library,
          String(x.threads),
          String(x.parameters),
          String(x.pairs),
          x.trainingPairsPerSec === undefined
            ? `— (${x.error ?? 'not measured'})`
            : num(x.trainingPairsPerSec, x.trainingPairsPerSec < 100 ? 1 : 0),
          x.library === 'gyre' || !g1 || x.trainingPairsPerSec === undefined
            ? ''
            : `${num(g1.trainingPairsPerSec / x.trainingPairsPerSec, 0)}×`,
        ]),
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
