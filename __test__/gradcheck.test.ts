/**
 * Finite-difference gradient checks in f64 through the public API (and so through the native
 * binding): every cell, several steps, batch > 1, non-zero initial states; every element of
 * every weight, bias, input and initial state. Tolerance: atol 1e-6 with rtol 1e-4.
 */
import { describe, expect, it } from 'vitest';
import { CELLS, randomProblem, run, type Problem } from './helpers';

const EPS = 1e-6;
const ATOL = 1e-6;
const RTOL = 1e-4;

/** L = Σ output·gradOutput + Σ hN·gradHN (+ Σ cN·gradCN): backward returns its gradients. */
function loss(p: Problem<Float64Array>): number {
  const { outputs } = run(p);
  const dot = (a: ArrayLike<number> | undefined, b: ArrayLike<number> | undefined) => {
    let s = 0;
    if (a && b) for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
    return s;
  };
  return dot(outputs.output, p.gradOutput) + dot(outputs.h_n, p.gradHN) + dot(outputs.c_n, p.gradCN);
}

function tensorOf(p: Problem<Float64Array>, name: string): Float64Array {
  if (name === 'x') return p.input;
  if (name === 'h0') return p.h0;
  if (name === 'c0') return p.c0!;
  return p.weights[name as keyof typeof p.weights];
}

describe('gradients equal central finite differences (f64)', () => {
  it.each(CELLS)('%s', (cell) => {
    let worst = 0;
    for (const [b, t, i, h, seed] of [
      [3, 6, 3, 4, 11],
      [2, 3, 1, 2, 12],
    ] as const) {
      const p = randomProblem(cell, b, t, i, h, seed);
      const { gradients } = run(p);
      const names = Object.keys(gradients).filter((k) => gradients[k] !== undefined);
      expect(names.sort()).toEqual(
        ['bias_hh_l0', 'bias_ih_l0', 'h0', 'weight_hh_l0', 'weight_ih_l0', 'x', ...(cell === 'lstm' ? ['c0'] : [])].sort(),
      );
      for (const name of names) {
        const analytic = gradients[name]!;
        const tensor = tensorOf(p, name);
        expect(analytic.length).toBe(tensor.length);
        for (let k = 0; k < tensor.length; k++) {
          const orig = tensor[k]!;
          tensor[k] = orig + EPS;
          const up = loss(p);
          tensor[k] = orig - EPS;
          const down = loss(p);
          tensor[k] = orig;
          const numeric = (up - down) / (2 * EPS);
          const err = Math.abs(analytic[k]! - numeric);
          if (err > ATOL + RTOL * Math.abs(numeric)) {
            expect.fail(`${cell} d${name}[${k}]: analytic ${analytic[k]}, numeric ${numeric}`);
          }
          worst = Math.max(worst, err);
        }
      }
    }
    console.log(`gradcheck ${cell}: largest |analytic - numeric| = ${worst.toExponential(3)}`);
  });
});
