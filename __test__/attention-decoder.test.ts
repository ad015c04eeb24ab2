/**
 * `attentionDecoderForward` / `attentionDecoderBackward` and `beamSearch` through the Node API:
 * the decoder against the independent NumPy decoder in
 * crates/gyre-core/tests/reference/attention.py (`decoder_cases` of attention.json: every cell,
 * each score, with and without input feeding; gradients there by finite differences), and beam
 * search against decoding written here with teacher-forced passes: width 1 is greedy decoding,
 * and each hypothesis's `logProb` is the model's log-probability of its tokens.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AttentionParams,
  type AttentionScoreName,
  attentionDecoderBackward,
  attentionDecoderForward,
  attentionDecoderStep,
  beamSearch,
  type DecoderArgs,
  InvalidArgumentError,
  MissingArgumentError,
} from 'gyre';

interface DecoderCase {
  name: string;
  cell: 'lstm' | 'gru' | 'gru_reset_before' | 'rnn_tanh' | 'rnn_relu';
  score: AttentionScoreName;
  input_feeding: boolean;
  batch: number;
  query_steps: number;
  input_size: number;
  hidden_size: number;
  memory_steps: number;
  memory_size: number;
  lengths: number[];
  inputs: Record<string, number[]>;
  outputs: Record<string, number[]>;
  gradients: Record<string, number[]>;
}

const doc = JSON.parse(readFileSync(join(__dirname, '..', 'crates', 'gyre-core', 'tests', 'reference', 'attention.json'), 'utf8')) as {
  decoder_cases: DecoderCase[];
};
const PARAMS: Record<AttentionScoreName, (keyof AttentionParams)[]> = {
  dot: [],
  general: ['weight'],
  additive: ['query_weight', 'key_weight', 'bias', 'v'],
};

function close(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)))) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

function args(c: DecoderCase): DecoderArgs<Float64Array> {
  const t = (k: string) => Float64Array.from(c.inputs[k]!);
  const params: AttentionParams<Float64Array> = {};
  for (const p of PARAMS[c.score]) params[p] = t(p);
  const cell = c.cell.startsWith('rnn') ? 'rnn' : c.cell === 'lstm' ? 'lstm' : 'gru';
  return {
    cell,
    ...(c.cell === 'rnn_relu' ? { nonlinearity: 'relu' as const } : {}),
    ...(c.cell === 'gru_reset_before' ? { resetAfter: false } : {}),
    score: c.score,
    inputFeeding: c.input_feeding,
    input: t('x'),
    memory: t('memory'),
    batch: c.batch,
    steps: c.query_steps,
    inputSize: c.input_size,
    hiddenSize: c.hidden_size,
    memorySteps: c.memory_steps,
    memorySize: c.memory_size,
    lengths: c.lengths,
    h0: t('h0'),
    ...(c.cell === 'lstm' ? { c0: t('c0') } : {}),
    weights: {
      weight_ih_l0: t('weight_ih'),
      weight_hh_l0: t('weight_hh'),
      bias_ih_l0: t('bias_ih'),
      bias_hh_l0: t('bias_hh'),
      combine_weight: t('combine_weight'),
      combine_bias: t('combine_bias'),
    },
    params,
  };
}

describe('the attention decoder against the NumPy decoder', () => {
  it.each(doc.decoder_cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const a = args(c);
    const out = attentionDecoderForward(a);
    close(out.output, c.outputs.output!, 1e-10, 'output');
    close(out.attention, c.outputs.weights!, 1e-10, 'attention');
    close(out.hN, c.outputs.hidden!, 1e-10, 'hN');
    if (c.cell === 'lstm') close(out.cN!, c.outputs.cell!, 1e-10, 'cN');
    const t = (k: string) => Float64Array.from(c.inputs[k]!);
    const g = attentionDecoderBackward({
      ...a,
      gradOutput: t('grad_output'),
      gradAttention: t('grad_weights'),
      gradHN: t('grad_hidden'),
      ...(c.cell === 'lstm' ? { gradCN: t('grad_cell') } : {}),
    });
    const want = c.gradients;
    close(g.gradInput, want.x!, 1e-6, 'gradInput');
    close(g.gradMemory, want.memory!, 1e-6, 'gradMemory');
    close(g.gradH0, want.h0!, 1e-6, 'gradH0');
    if (c.cell === 'lstm') close(g.gradC0!, want.c0!, 1e-6, 'gradC0');
    close(g.gradWeights.weight_ih_l0, want.weight_ih!, 1e-6, 'weight_ih_l0');
    close(g.gradWeights.weight_hh_l0, want.weight_hh!, 1e-6, 'weight_hh_l0');
    close(g.gradWeights.bias_ih_l0, want.bias_ih!, 1e-6, 'bias_ih_l0');
    close(g.gradWeights.bias_hh_l0, want.bias_hh!, 1e-6, 'bias_hh_l0');
    close(g.gradWeights.combine_weight, want.combine_weight!, 1e-6, 'combine_weight');
    close(g.gradWeights.combine_bias, want.combine_bias!, 1e-6, 'combine_bias');
    for (const p of PARAMS[c.score]) close(g.gradParams[p]!, want[p]!, 1e-6, p);
    // f32 gives the same values to f32 precision.
    const f32 = attentionDecoderForward({
      ...a,
      input: Float32Array.from(a.input),
      memory: Float32Array.from(a.memory),
      h0: Float32Array.from(a.h0!),
      ...(a.c0 ? { c0: Float32Array.from(a.c0) } : {}),
      weights: Object.fromEntries(Object.entries(a.weights).map(([k, v]) => [k, Float32Array.from(v)])) as never,
      params: Object.fromEntries(Object.entries(a.params ?? {}).map(([k, v]) => [k, Float32Array.from(v)])),
    });
    close(f32.output, c.outputs.output!, 2e-5, 'f32 output');
  });
});

describe('attentionDecoderStep', () => {
  it.each(doc.decoder_cases.map((c) => [c.name, c] as const))('stepping %s gives the whole pass', (_, c) => {
    const a = args(c);
    const whole = attentionDecoderForward(a);
    const { input, steps, ...base } = a;
    const [B, T, I, H, TK] = [c.batch, steps, c.input_size, c.hidden_size, c.memory_steps];
    let state: { h0: Float64Array; c0?: Float64Array; hTilde?: Float64Array } = { h0: a.h0!, ...(a.c0 ? { c0: a.c0 } : {}) };
    for (let t = 0; t < T; t++) {
      const x = new Float64Array(B * I);
      for (let b = 0; b < B; b++) x.set(input.subarray((b * T + t) * I, (b * T + t + 1) * I), b * I);
      const r = attentionDecoderStep({ ...base, ...state, input: x });
      for (let b = 0; b < B; b++) {
        close(
          r.output.subarray(b * H, (b + 1) * H),
          Array.from(whole.output.subarray((b * T + t) * H, (b * T + t + 1) * H)),
          1e-12,
          `output ${t}`,
        );
        close(
          r.attention.subarray(b * TK, (b + 1) * TK),
          Array.from(whole.attention.subarray((b * T + t) * TK, (b * T + t + 1) * TK)),
          1e-12,
          `attention ${t}`,
        );
      }
      state = { h0: r.hN, ...(r.cN ? { c0: r.cN } : {}), hTilde: r.hTilde };
    }
    close(state.h0, Array.from(whole.hN), 1e-12, 'hN');
    expect(() => attentionDecoderStep({ ...base, input: new Float64Array(B * I), hTilde: new Float64Array(H) })).toThrow(/hTilde/);
  });
});

describe('beamSearch', () => {
  // A small LSTM decoder with the general score and input feeding, vocabulary of 5 (0 start, 1 end).
  const V = 5;
  const E = 3;
  const H = 4;
  const HK = 3;
  const TK = 4;
  const rand = (n: number, salt: number, scale = 1) =>
    Float64Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + salt * 78.233) * scale);
  const base = {
    cell: 'lstm' as const,
    score: 'general' as const,
    inputFeeding: true,
    memory: rand(2 * TK * HK, 1),
    batch: 2,
    inputSize: E,
    hiddenSize: H,
    memorySteps: TK,
    memorySize: HK,
    lengths: [4, 2],
    h0: rand(2 * H, 2, 0.5),
    weights: {
      weight_ih_l0: rand(4 * H * (E + H), 3),
      weight_hh_l0: rand(4 * H * H, 4),
      bias_ih_l0: rand(4 * H, 5, 0.3),
      bias_hh_l0: rand(4 * H, 6, 0.3),
      combine_weight: rand(H * (HK + H), 7),
      combine_bias: rand(H, 8, 0.3),
    },
    params: { weight: rand(H * HK, 9) },
  };
  const head = { embedding: rand(V * E, 10), outputWeight: rand(V * H, 11, 1.5), outputBias: rand(V, 12, 0.5), start: 0, end: 1 };

  /** Teacher forcing over [start, ...tokens] for one sequence: each step's log-softmax. */
  function logSoftmaxes(n: number, tokens: number[]): number[][] {
    const inputs = [0, ...tokens];
    const input = new Float64Array(inputs.length * E);
    inputs.forEach((tok, t) => {
      input.set(head.embedding.subarray(tok * E, tok * E + E), t * E);
    });
    const out = attentionDecoderForward({
      ...base,
      batch: 1,
      memory: base.memory.subarray(n * TK * HK, (n + 1) * TK * HK),
      lengths: [base.lengths[n]!],
      h0: base.h0.subarray(n * H, (n + 1) * H),
      input,
      steps: inputs.length,
    });
    return inputs.map((_, t) => {
      const logits = Array.from({ length: V }, (_, v) => {
        let s = head.outputBias[v]!;
        for (let j = 0; j < H; j++) s += head.outputWeight[v * H + j]! * out.output[t * H + j]!;
        return s;
      });
      const top = Math.max(...logits);
      const lse = top + Math.log(logits.reduce((a, l) => a + Math.exp(l - top), 0));
      return logits.map((l) => l - lse);
    });
  }
  const logProb = (n: number, tokens: number[]) => {
    const lp = logSoftmaxes(n, tokens);
    return tokens.reduce((s, y, t) => s + lp[t]![y]!, 0);
  };

  it('with width 1 is greedy decoding', () => {
    const found = beamSearch({ ...base, ...head, beamWidth: 1, maxLength: 6 });
    for (let n = 0; n < 2; n++) {
      const tokens: number[] = [];
      while (tokens.length < 6) {
        const row = logSoftmaxes(n, tokens)[tokens.length]!;
        const best = row.indexOf(Math.max(...row));
        tokens.push(best);
        if (best === 1) break;
      }
      expect(found[n]![0]!.tokens).toEqual(tokens);
      expect(found[n]![0]!.logProb).toBeCloseTo(logProb(n, tokens), 9);
    }
  });

  it("scores every hypothesis by the model's log-probability, best first, with its attention rows", () => {
    const found = beamSearch({ ...base, ...head, beamWidth: 3, maxLength: 5, nBest: 3, lengthPenalty: 0.6 });
    expect(found).toHaveLength(2);
    for (let n = 0; n < 2; n++) {
      expect(found[n]).toHaveLength(3);
      found[n]!.forEach((h, r) => {
        expect(h.logProb).toBeCloseTo(logProb(n, h.tokens), 9);
        expect(h.score).toBeCloseTo(h.logProb / ((5 + h.tokens.length) / 6) ** 0.6, 12);
        expect(h.attention).toBeInstanceOf(Float64Array);
        expect(h.attention.length).toBe(h.tokens.length * TK);
        expect(h.finished).toBe(h.tokens[h.tokens.length - 1] === 1);
        if (r > 0) expect(found[n]![r - 1]!.score).toBeGreaterThanOrEqual(h.score);
      });
    }
  });

  it('names bad options', () => {
    expect(() => beamSearch({ ...base, ...head, beamWidth: 0, maxLength: 4 })).toThrow(/beamWidth/);
    expect(() => beamSearch({ ...base, ...head, maxLength: 4, end: 5 })).toThrow(InvalidArgumentError);
    expect(() => beamSearch({ ...base, ...head, maxLength: 4, lengthPenalty: -1 })).toThrow(/lengthPenalty/);
    const { embedding: _, ...noEmbedding } = head;
    expect(() => beamSearch({ ...base, ...noEmbedding, maxLength: 4 } as never)).toThrow(MissingArgumentError);
    expect(() => beamSearch({ ...base, ...head, maxLength: 4, outputBias: new Float64Array(4) })).toThrow(
      /outputBias must have shape \[5\]/,
    );
    expect(() => attentionDecoderForward({ ...base, cell: 'tcn' as never, input: new Float64Array(3), steps: 1 })).toThrow(/cell must be/);
    expect(() => attentionDecoderForward({ ...base, input: new Float64Array(5), steps: 1 })).toThrow(/input/);
    expect(() => attentionDecoderForward({ ...base, input: new Float64Array(6), steps: 1, c0: new Float64Array(3) })).toThrow(/c0/);
  });
});
