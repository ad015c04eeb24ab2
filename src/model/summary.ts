/**
 * What {@link Model.summary} and {@link Model.predictClasses} compute from a model's spec,
 * parameters and outputs: per-layer output shapes and parameter counts, and the classes a
 * classifier's outputs rank highest.
 * @module
 */
import { InvalidArgumentError } from '../errors.js';
import type { LayerSpec, ModelSpec } from './spec.js';

/** One layer of a {@link ModelSummary}. */
export interface LayerSummary {
  /** The layer's index in `config.layers` (its parameters are named `<index>.…`). */
  index: number;
  /** `embedding`, `rnn`, `lstm`, `gru` or `dense`. */
  type: LayerSpec['type'];
  /** A one-line description of its options (`hidden 64 × 2 layers, bidirectional (concat)`). */
  description: string;
  /** The output's shape; `null` for the batch and for the steps of a sequence. */
  outputShape: (number | null)[];
  /** Parameter values of the layer. */
  parameters: number;
  /** Whether training updates them. */
  trainable: boolean;
}

/** What {@link Model.summary} returns. */
export interface ModelSummary {
  /** The input's shape: `[null, null]` token ids, `[null, null, features]` floats. */
  inputShape: (number | null)[];
  layers: LayerSummary[];
  /** Parameter values in all. */
  totalParameters: number;
  /** Those training updates (the layers not frozen). */
  trainableParameters: number;
}

/** @internal The summary of a model of `spec` whose parameters have the given lengths by name. */
export function summarize(spec: ModelSpec, parameterLengths: Record<string, number>): ModelSummary {
  const tokens = 'vocabSize' in spec.input;
  let shape: (number | null)[] = tokens ? [null, null] : [null, null, (spec.input as { features: number }).features];
  const inputShape = [...shape];
  const layers: LayerSummary[] = spec.layers.map((l, index) => {
    let description: string;
    if (l.type === 'embedding') {
      shape = [null, null, l.dim];
      description = `${(spec.input as { vocabSize: number }).vocabSize} ids → ${l.dim}`;
    } else if (l.type === 'dense') {
      shape = [...shape.slice(0, -1), l.units];
      description = `${l.units} units, ${l.activation ?? 'linear'}`;
    } else {
      const dirs = l.bidirectional ? 2 : 1;
      const width = dirs === 2 && (l.merge ?? 'concat') === 'concat' ? 2 * l.hiddenSize : l.hiddenSize;
      const sequences = l.returnSequences ?? true;
      shape = sequences ? [null, null, width] : [null, width];
      const parts = [`hidden ${l.hiddenSize}`];
      if ((l.numLayers ?? 1) > 1) parts[0] += ` × ${l.numLayers} layers`;
      if (dirs === 2) parts.push(`bidirectional (${l.merge ?? 'concat'})`);
      if (l.goBackwards) parts.push('backwards');
      parts.push(sequences ? 'sequences' : 'last step');
      if ((l.dropout ?? 0) > 0) parts.push(`dropout ${l.dropout}`);
      description = parts.join(', ');
    }
    const parameters = Object.entries(parameterLengths)
      .filter(([name]) => name.startsWith(`${index}.`))
      .reduce((n, [, len]) => n + len, 0);
    return { index, type: l.type, description, outputShape: [...shape], parameters, trainable: l.trainable !== false };
  });
  const totalParameters = layers.reduce((n, l) => n + l.parameters, 0);
  const trainableParameters = layers.reduce((n, l) => n + (l.trainable ? l.parameters : 0), 0);
  return { inputShape, layers, totalParameters, trainableParameters };
}

/** @internal The summary as an aligned table, Keras-style. */
export function summaryText(s: ModelSummary): string {
  const shape = (v: (number | null)[]) => `[${v.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
  const rows = s.layers.map((l) => [
    `${l.index} ${l.type}`,
    l.description,
    shape(l.outputShape),
    l.parameters.toLocaleString('en-US') + (l.trainable ? '' : ' (frozen)'),
  ]);
  const head = ['layer', 'options', 'output shape', 'parameters'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((v, c) => (c === 3 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  const rule = '-'.repeat(widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1));
  return [
    `input ${shape(s.inputShape)}`,
    line(head),
    rule,
    ...rows.map(line),
    rule,
    `parameters: ${s.totalParameters.toLocaleString('en-US')} (${s.trainableParameters.toLocaleString('en-US')} trainable)`,
  ].join('\n');
}

/** One class and its probability. */
export interface ClassScore {
  class: number;
  probability: number;
}

/** What {@link Model.predictClasses} gives per sequence (or per step): the best class and the `topK` best. */
export interface ClassPrediction extends ClassScore {
  /** The `topK` most probable classes, most probable first (ties: lower class first). */
  top: ClassScore[];
}

/**
 * @internal How the last layer's outputs become class probabilities: `softmax` outputs are
 * probabilities, `linear` outputs logits (softmaxed here), one `sigmoid` unit is P(class 1).
 */
export function classScoring(spec: ModelSpec): 'probabilities' | 'logits' | 'binary' {
  const last = spec.layers[spec.layers.length - 1];
  if (last?.type === 'dense') {
    const act = last.activation ?? 'linear';
    if (act === 'softmax') return 'probabilities';
    if (act === 'linear') return 'logits';
    if (act === 'sigmoid' && last.units === 1) return 'binary';
  }
  const what =
    last?.type === 'dense' ? `a dense layer of ${last.units} unit(s) with ${last.activation ?? 'linear'}` : `its ${last?.type} layer`;
  throw new InvalidArgumentError(
    `predictClasses needs a classifier: a last dense layer with softmax (probabilities), linear (logits) or one sigmoid unit; this model ends with ${what}`,
  );
}

/** @internal The class predictions of `out`'s rows of `width` values (`scoring` from {@link classScoring}). */
export function rankClasses(
  out: Float32Array,
  width: number,
  scoring: 'probabilities' | 'logits' | 'binary',
  topK: number,
): ClassPrediction {
  let p: number[];
  if (scoring === 'binary') {
    const p1 = out[0]!;
    p = [1 - p1, p1];
  } else {
    p = Array.from(out.subarray(0, width));
    if (scoring === 'logits') {
      const max = Math.max(...p);
      const e = p.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      p = e.map((v) => v / sum);
    }
  }
  const order = p.map((_, c) => c).sort((a, b) => p[b]! - p[a]! || a - b);
  const top = order.slice(0, Math.min(topK, p.length)).map((c) => ({ class: c, probability: p[c]! }));
  return { class: top[0]!.class, probability: top[0]!.probability, top };
}
