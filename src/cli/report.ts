/**
 * Training reports: the loss curve as a terminal chart (drawn by `asciichart`) and a
 * self-contained HTML page (inline SVG charts, no external assets) with the training curves,
 * the settings and the results.
 */
import * as asciichart from 'asciichart';
import type { ProgressEvent } from '../model/index.js';

/** Everything a report shows about one training run. */
export interface TrainingRun {
  /** A title, e.g. the command or the data file. */
  title: string;
  /** Settings to list (name → value). */
  settings: Record<string, string | number | boolean>;
  /** Every progress event of the run, in order. */
  events: ProgressEvent[];
  /** Results to list after training (name → value), e.g. generated samples or test errors. */
  results?: Record<string, string | number>;
  /** Wall-clock seconds of training. */
  seconds: number;
  /** A classifier's confusion matrix: `matrix[label][predicted]`, both in `labels` order. */
  confusion?: { title: string; labels: string[]; matrix: number[][] };
  /** An encoder–decoder's attention on a few examples: `weights[output token][source token]`. */
  attention?: { title: string; examples: { source: string[]; output: string[]; weights: number[][] }[] };
}

/** Keeps at most `n` points, averaging consecutive values (so a long curve keeps its shape). */
export function downsample(values: readonly number[], n: number): number[] {
  if (values.length <= n) return [...values];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const from = Math.floor((i * values.length) / n);
    const to = Math.max(from + 1, Math.floor(((i + 1) * values.length) / n));
    let s = 0;
    for (let j = from; j < to; j++) s += values[j]!;
    out.push(s / (to - from));
  }
  return out;
}

/**
 * The loss curve for a terminal: per-batch losses (averaged down to `width` points) when there
 * are more batches than epochs, with the per-epoch validation loss listed under it.
 */
export function terminalLossChart(events: readonly ProgressEvent[], width = 60, height = 10): string {
  const batches = events.filter((e) => e.kind === 'batch').map((e) => e.loss);
  const epochs = events.filter((e) => e.kind === 'epoch');
  const curve = batches.length > epochs.length ? batches : epochs.map((e) => e.loss);
  const finite = curve.filter(Number.isFinite);
  if (finite.length < 2) return '';
  const points = downsample(finite, width);
  const chart = asciichart.plot(points, { height, format: (x: number) => x.toFixed(4).padStart(9) });
  const label = batches.length > epochs.length ? `training loss over ${batches.length} batches` : 'training loss per epoch';
  const lines = [`  ${label}`, chart];
  const val = epochs.filter((e) => e.valLoss !== undefined);
  if (val.length > 0) lines.push(`  validation loss per epoch: ${val.map((e) => e.valLoss!.toFixed(4)).join(' ')}`);
  return lines.join('\n');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** An SVG line chart of one or more series against their index (x from 1). */
export function svgChart(title: string, series: { name: string; values: readonly number[]; color: string }[], xLabel: string): string {
  const [w, h, left, right, top, bottom] = [640, 300, 64, 16, 28, 40];
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  if (all.length === 0) return '';
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
  const n = Math.max(...series.map((s) => s.values.length));
  const x = (i: number) => left + (n <= 1 ? 0 : (i * (w - left - right)) / (n - 1));
  const y = (v: number) => top + ((hi - v) * (h - top - bottom)) / (hi - lo);
  const ticks = Array.from({ length: 5 }, (_, k) => lo + ((hi - lo) * k) / 4);
  const grid = ticks
    .map(
      (t) =>
        `<line x1="${left}" x2="${w - right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e7eb"/>` +
        `<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#555">${t.toPrecision(3)}</text>`,
    )
    .join('');
  const lines = series
    .map((s) => {
      const pts = s.values
        .map((v, i) => (Number.isFinite(v) ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : ''))
        .filter(Boolean)
        .join(' ');
      return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts}"/>`;
    })
    .join('');
  const legend = series
    .map(
      (s, i) =>
        `<rect x="${left + 10 + i * 150}" y="8" width="12" height="4" fill="${s.color}"/><text x="${left + 26 + i * 150}" y="13" font-size="11">${escapeHtml(s.name)}</text>`,
    )
    .join('');
  return (
    `<figure><figcaption>${escapeHtml(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">` +
    `${grid}${lines}${legend}` +
    `<text x="${(left + w - right) / 2}" y="${h - 8}" text-anchor="middle" font-size="12" fill="#333">${escapeHtml(xLabel)} (1–${n})</text>` +
    `</svg></figure>`
  );
}

/** A confusion matrix as an HTML table, each cell shaded by its share of its row. */
function confusionTable(c: NonNullable<TrainingRun['confusion']>): string {
  const head = `<tr><th>label \\ predicted</th>${c.labels.map((l) => `<th>${escapeHtml(l)}</th>`).join('')}</tr>`;
  const rows = c.matrix
    .map((row, k) => {
      const total = row.reduce((a, b) => a + b, 0);
      const cells = row
        .map((v) => {
          const share = total > 0 ? v / total : 0;
          return `<td style="background:rgba(37,99,235,${(0.85 * share).toFixed(3)})">${v}</td>`;
        })
        .join('');
      return `<tr><th>${escapeHtml(c.labels[k] ?? String(k))}</th>${cells}</tr>`;
    })
    .join('');
  return `<h2>${escapeHtml(c.title)}</h2><table class="confusion">${head}${rows}</table>`;
}

/** Attention heat maps: one table per example, output tokens down, source tokens across, each cell shaded by its weight. */
function attentionMaps(a: NonNullable<TrainingRun['attention']>): string {
  const maps = a.examples.map((ex) => {
    const head = `<tr><th></th>${ex.source.map((t) => `<th>${escapeHtml(t)}</th>`).join('')}</tr>`;
    const rows = ex.weights
      .map((row, k) => {
        const cells = row
          .map((w) => `<td title="${w.toFixed(3)}" style="background:rgba(37,99,235,${(0.9 * w).toFixed(3)})"></td>`)
          .join('');
        return `<tr><th>${escapeHtml(ex.output[k] ?? '')}</th>${cells}</tr>`;
      })
      .join('');
    return `<table class="attention">${head}${rows}</table>`;
  });
  return `<h2>${escapeHtml(a.title)}</h2>${maps.join('\n')}`;
}

/** A self-contained HTML report of a training run: curves, settings, per-epoch table, results. */
export function htmlReport(run: TrainingRun): string {
  const epochs = run.events.filter((e) => e.kind === 'epoch');
  const batches = run.events.filter((e) => e.kind === 'batch');
  const charts: string[] = [];
  const epochSeries = [{ name: 'training loss', values: epochs.map((e) => e.loss), color: '#2563eb' }];
  if (epochs.some((e) => e.valLoss !== undefined))
    epochSeries.push({ name: 'validation loss', values: epochs.map((e) => e.valLoss ?? NaN), color: '#dc2626' });
  if (epochs.length > 1) charts.push(svgChart('Loss per epoch', epochSeries, 'epoch'));
  if (epochs.some((e) => e.accuracy !== undefined) && epochs.length > 1) {
    const acc = [{ name: 'training accuracy', values: epochs.map((e) => e.accuracy ?? NaN), color: '#2563eb' }];
    if (epochs.some((e) => e.valAccuracy !== undefined))
      acc.push({ name: 'validation accuracy', values: epochs.map((e) => e.valAccuracy ?? NaN), color: '#dc2626' });
    charts.push(svgChart('Accuracy per epoch', acc, 'epoch'));
  }
  if (batches.length > 1)
    charts.push(
      svgChart(
        'Loss per batch',
        [
          {
            name: 'batch loss',
            values: downsample(
              batches.map((e) => e.loss),
              400,
            ),
            color: '#059669',
          },
        ],
        'batch (averaged)',
      ),
    );
  const row = (cells: (string | number | undefined)[], tag = 'td') =>
    `<tr>${cells.map((c) => `<${tag}>${c === undefined ? '' : escapeHtml(typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toPrecision(5)) : c)}</${tag}>`).join('')}</tr>`;
  const table = (entries: Record<string, string | number | boolean>) =>
    `<table>${Object.entries(entries)
      .map(([k, v]) => row([k, String(v)]))
      .join('')}</table>`;
  const perEpoch =
    `<table>${row(['epoch', 'loss', 'accuracy', 'val loss', 'val accuracy', 'learning rate', 'samples/s'], 'th')}` +
    epochs
      .map((e) => row([e.epoch, e.loss, e.accuracy, e.valLoss, e.valAccuracy, e.learningRate, Math.round(e.samplesPerSecond)]))
      .join('') +
    '</table>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gyre training report: ${escapeHtml(run.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;color:#111}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:4px}pre{background:#f6f8fa;padding:8px}table.attention td{width:18px;height:18px;padding:0}</style>
</head><body>
<h1>Training report</h1>
<p>${escapeHtml(run.title)} — ${epochs.length} epoch(s), ${batches.length} batches, ${run.seconds.toFixed(1)} s.</p>
${charts.join('\n')}
<h2>Settings</h2>${table(run.settings)}
<h2>Epochs</h2>${perEpoch}
${run.results ? `<h2>Results</h2>${table(run.results)}` : ''}
${run.confusion ? confusionTable(run.confusion) : ''}
${run.attention ? attentionMaps(run.attention) : ''}
</body></html>
`;
}
