/**
 * `lengths` and `reverse` in the functional recurrent API through Node: a padded batch gives
 * each sequence what it gets alone (outputs, final states, gradients; 0 at padded steps), and
 * `reverse` is the forward pass over the time-reversed sequence (the Rust side checks every cell:
 * crates/gyre-core/tests/functional_lengths.rs).
 */
import { describe, expect, it } from 'vitest';
import { gruBackward, gruForward, InvalidArgumentError, lstmForward } from 'gyre';

const B = 3;
const T = 5;
const I = 2;
const H = 3;
const rand = (n: number, salt: number) => Float64Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + salt * 78.233) * 0.8);
const weights = (g: number) => ({
  weight_ih_l0: rand(g * H * I, 1),
  weight_hh_l0: rand(g * H * H, 2),
  bias_ih_l0: rand(g * H, 3),
  bias_hh_l0: rand(g * H, 4),
});
const input = rand(B * T * I, 5);
const lengths = [5, 2, 4];

/** Sequence b's first `len` steps, reversed in time when asked. */
function slice(x: Float64Array, b: number, len: number, width: number, reverse: boolean): Float64Array {
  const out = new Float64Array(len * width);
  for (let t = 0; t < len; t++) {
    const src = reverse ? len - 1 - t : t;
    out.set(x.subarray((b * T + src) * width, (b * T + src + 1) * width), t * width);
  }
  return out;
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  expect(a.length, what).toBe(b.length);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 1e-12) throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

describe('lengths and reverse', () => {
  for (const reverse of [false, true]) {
    it(`gives each GRU sequence what it gets alone${reverse ? ', in reverse' : ''}`, () => {
      const w = weights(3);
      const h0 = rand(B * H, 6);
      const gradOutput = rand(B * T * H, 7);
      const out = gruForward({ input, batch: B, steps: T, inputSize: I, hiddenSize: H, weights: w, h0, lengths, reverse });
      const g = gruBackward({ input, batch: B, steps: T, inputSize: I, hiddenSize: H, weights: w, h0, lengths, reverse, gradOutput });
      lengths.forEach((len, b) => {
        const alone = {
          input: slice(input, b, len, I, reverse),
          batch: 1,
          steps: len,
          inputSize: I,
          hiddenSize: H,
          weights: w,
          h0: h0.subarray(b * H, (b + 1) * H),
        };
        const a = gruForward(alone);
        const ga = gruBackward({ ...alone, gradOutput: slice(gradOutput, b, len, H, reverse) });
        const back = (x: Float64Array, width: number) => {
          const o = new Float64Array(len * width);
          for (let t = 0; t < len; t++) o.set(x.subarray(t * width, (t + 1) * width), (reverse ? len - 1 - t : t) * width);
          return o;
        };
        expectClose(out.output.subarray(b * T * H, (b * T + len) * H), back(a.output, H), `output ${b}`);
        expect(Array.from(out.output.subarray((b * T + len) * H, (b + 1) * T * H)).every((v) => v === 0)).toBe(true);
        expectClose(out.hN.subarray(b * H, (b + 1) * H), a.hN, `hN ${b}`);
        expectClose(g.gradInput.subarray(b * T * I, (b * T + len) * I), back(ga.gradInput, I), `gradInput ${b}`);
        expectClose(g.gradH0.subarray(b * H, (b + 1) * H), ga.gradH0, `gradH0 ${b}`);
      });
    });
  }

  it('without lengths is the plain call, and bad lengths are named', () => {
    const w = weights(4);
    const args = { input, batch: B, steps: T, inputSize: I, hiddenSize: H, weights: w };
    expect(Array.from(lstmForward({ ...args, lengths: [T, T, T] }).output)).toEqual(Array.from(lstmForward(args).output));
    expect(() => lstmForward({ ...args, lengths: [5, 0, 1] })).toThrow(/lengths\[1\]/);
    expect(() => lstmForward({ ...args, lengths: [5, 6, 1] })).toThrow(InvalidArgumentError);
    expect(() => lstmForward({ ...args, lengths: [5, 1] })).toThrow(/lengths must have 3 entries/);
    expect(() => lstmForward({ ...args, reverse: 'yes' as never })).toThrow(/reverse must be a boolean/);
  });
});
