/**
 * The public API against reference values from an independent NumPy implementation of
 * PyTorch's cells: crates/gyre-core/tests/reference/generate.py (which checks its own
 * gradients by finite differences) wrote recurrent.json beside it.
 */
import { describe, expect, it } from 'vitest';
import type { FloatArray } from 'gyre';
import { CELLS, fromReference, referenceCases, run, type Run } from './helpers';

function expectClose(what: string, got: ArrayLike<number> | undefined, want: number[], tol: number): void {
  expect(got, what).toBeDefined();
  expect(got!.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got![i]! - want[i]!);
    if (err > tol * (1 + Math.abs(want[i]!))) {
      expect.fail(`${what}[${i}]: got ${got![i]}, want ${want[i]} (tolerance ${tol})`);
    }
  }
}

const cases = referenceCases();

describe('reference values (NumPy, PyTorch conventions)', () => {
  it('cover every cell with several steps and batch > 1', () => {
    expect(new Set(cases.map((c) => c.cell))).toEqual(new Set(CELLS));
    for (const cell of CELLS) {
      expect(cases.some((c) => c.cell === cell && c.steps > 1 && c.batch > 1)).toBe(true);
    }
  });

  for (const [label, dtype, tol] of [
    ['Float64Array', Float64Array, 1e-10],
    ['Float32Array', Float32Array, 2e-5],
  ] as const) {
    describe(label, () => {
      it.each(cases.map((c) => [c.name, c] as const))('%s: outputs and gradients match', (_, c) => {
        const result: Run = run(fromReference<FloatArray>(c, dtype as { from(a: number[]): FloatArray }));
        for (const [k, want] of Object.entries(c.outputs)) {
          expect(result.outputs[k], k).toBeInstanceOf(dtype);
          expectClose(`${c.name} ${k}`, result.outputs[k], want, tol);
        }
        for (const [k, want] of Object.entries(c.gradients)) {
          expect(result.gradients[k], k).toBeInstanceOf(dtype);
          expectClose(`${c.name} d${k}`, result.gradients[k], want, tol);
        }
      });
    });
  }
});
