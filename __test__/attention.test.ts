/**
 * `attentionForward` / `attentionBackward` through the Node API against the values an
 * independent NumPy implementation wrote (crates/gyre-core/tests/reference/attention.py, which
 * checks its own gradients by finite differences, wrote attention.json beside it): dot, general
 * and additive scores with variable lengths, in f64 and f32; and the errors of bad arguments.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AttentionParams,
  type AttentionScoreName,
  attentionBackward,
  attentionForward,
  InvalidArgumentError,
  MissingArgumentError,
  ShapeMismatchError,
} from 'gyre';

interface Case {
  name: string;
  score: AttentionScoreName;
  batch: number;
  query_steps: number;
  query_size: number;
  memory_steps: number;
  memory_size: number;
  lengths: number[];
  inputs: Record<string, number[]>;
  outputs: { context: number[]; weights: number[] };
  gradients: Record<string, number[]>;
}

const cases = (
  JSON.parse(readFileSync(join(__dirname, '..', 'crates', 'gyre-core', 'tests', 'reference', 'attention.json'), 'utf8')) as {
    cases: Case[];
  }
).cases;

const PARAMS: Record<AttentionScoreName, (keyof AttentionParams)[]> = {
  dot: [],
  general: ['weight'],
  additive: ['query_weight', 'key_weight', 'bias', 'v'],
};

function expectClose(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= tol * (1 + Math.abs(want[i]!)))) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

describe('attention against the NumPy reference', () => {
  for (const [Type, tol] of [
    [Float64Array, 1e-10],
    [Float32Array, 2e-5],
  ] as const) {
    it.each(cases.map((c) => [c.name, c] as const))(`%s (${Type.name})`, (_, c) => {
      const t = (k: string) => Type.from(c.inputs[k]!);
      const params: AttentionParams<InstanceType<typeof Type>> = {};
      for (const p of PARAMS[c.score]) params[p] = t(p);
      const args = {
        score: c.score,
        query: t('query'),
        memory: t('memory'),
        batch: c.batch,
        querySteps: c.query_steps,
        querySize: c.query_size,
        memorySteps: c.memory_steps,
        memorySize: c.memory_size,
        lengths: c.lengths,
        params,
      };
      const out = attentionForward(args);
      expect(out.context).toBeInstanceOf(Type);
      expectClose(out.context, c.outputs.context, tol, 'context');
      expectClose(out.weights, c.outputs.weights, tol, 'weights');
      const g = attentionBackward({ ...args, gradContext: t('grad_context'), gradWeights: t('grad_weights') });
      expectClose(g.gradQuery, c.gradients.query!, tol, 'gradQuery');
      expectClose(g.gradMemory, c.gradients.memory!, tol, 'gradMemory');
      expect(Object.keys(g.gradParams).sort()).toEqual([...PARAMS[c.score]].sort());
      for (const p of PARAMS[c.score]) expectClose(g.gradParams[p]!, c.gradients[p]!, tol, `gradParams.${p}`);
    });
  }
});

describe('attention arguments', () => {
  const base = {
    score: 'general' as const,
    query: new Float32Array(2 * 3 * 4),
    memory: new Float32Array(2 * 5 * 2),
    batch: 2,
    querySteps: 3,
    querySize: 4,
    memorySteps: 5,
    memorySize: 2,
    params: { weight: new Float32Array(4 * 2) },
  };

  it('defaults the lengths to every memory step, and padded steps get weight 0', () => {
    const memory = Float32Array.from({ length: 20 }, (_, i) => Math.sin(i));
    const query = Float32Array.from({ length: 24 }, (_, i) => Math.cos(i));
    const params = { weight: Float32Array.from({ length: 8 }, (_, i) => 0.1 * i - 0.3) };
    const full = attentionForward({ ...base, query, memory, params });
    expect(Array.from(full.context)).toEqual(Array.from(attentionForward({ ...base, query, memory, params, lengths: [5, 5] }).context));
    const short = attentionForward({ ...base, query, memory, params, lengths: new Uint32Array([2, 0]) });
    for (let i = 0; i < 3; i++) {
      const row = short.weights.subarray(i * 5, i * 5 + 5);
      expect(row[0]! + row[1]!).toBeCloseTo(1, 6);
      expect(Array.from(row.subarray(2))).toEqual([0, 0, 0]);
    }
    expect(Array.from(short.context.subarray(6))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('names the bad argument', () => {
    expect(() => attentionForward({ ...base, score: 'cosine' as never })).toThrow(
      /score must be 'dot', 'general' or 'additive', got "cosine"/,
    );
    expect(() => attentionForward({ ...base, lengths: [6, 1] })).toThrow(InvalidArgumentError);
    expect(() => attentionForward({ ...base, lengths: [6, 1] })).toThrow(/lengths\[0\]/);
    expect(() => attentionForward({ ...base, lengths: [1] })).toThrow(/lengths must have 2 entries/);
    expect(() => attentionForward({ ...base, params: {} })).toThrow(MissingArgumentError);
    expect(() => attentionForward({ ...base, params: { weight: new Float32Array(8), v: new Float32Array(1) } })).toThrow(/params\.v/);
    expect(() => attentionForward({ ...base, params: { weight: new Float32Array(7) } })).toThrow(ShapeMismatchError);
    expect(() => attentionForward({ ...base, params: { weight: new Float64Array(8) as never } })).toThrow(
      /params\.weight must be a Float32Array like query/,
    );
    expect(() => attentionForward({ ...base, score: 'dot', params: {} })).toThrow(/memory.*width/);
    expect(() => attentionForward({ ...base, memory: new Float32Array(3) })).toThrow(/attentionForward: .*memory/);
    expect(() => attentionBackward({ ...base, gradContext: new Float32Array(5) })).toThrow(/grad_context/);
    expect(() => attentionForward({ ...base, extra: 1 } as never)).toThrow(/extra/);
  });
});
