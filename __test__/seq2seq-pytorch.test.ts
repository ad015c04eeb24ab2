/**
 * gyre's encoder–decoder files in PyTorch: `__test__/pytorch/seq2seq/torch_seq2seq.py` loaded
 * two gyre files (a 2-layer bidirectional LSTM with the general score and input feeding, a GRU
 * with the additive score) into PyTorch modules with `load_state_dict(strict=True)` — every
 * parameter name and shape is PyTorch's own — and computed, in float64 and independently of
 * gyre, each pair's teacher-forced cross-entropy and greedy decoding (`expected.json`). Here gyre
 * loads the same files and must agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Seq2Seq, type TextPair } from 'gyre';

const dir = join(__dirname, 'pytorch', 'seq2seq');
const data = JSON.parse(readFileSync(join(dir, 'pairs.json'), 'utf8')) as { pairs: TextPair[] };
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  cases: Record<string, { parameters: string[]; loss: number; pair_losses: number[]; greedy: { tokens: number[]; log_prob: number }[] }>;
};

describe('Seq2Seq files against PyTorch modules', () => {
  for (const name of ['lstm', 'gru']) {
    const want = expected.cases[name]!;
    it(`${name}: PyTorch's parameter names, its loss per pair and its greedy outputs`, async () => {
      const s2s = await Seq2Seq.load(join(dir, `${name}.safetensors`));
      expect(
        s2s
          .parameterShapes()
          .map((p) => p.name)
          .sort(),
      ).toEqual(want.parameters);
      const all = await s2s.evaluate(data.pairs);
      expect(Math.abs(all.loss - want.loss)).toBeLessThan(1e-5);
      for (const [i, pair] of data.pairs.entries()) {
        const one = await s2s.evaluate([pair]);
        const tokens = [...pair[1]].length + 1;
        expect(Math.abs(one.loss - want.pair_losses[i]! / tokens)).toBeLessThan(1e-5);
      }
      const out = await s2s.transduce(
        data.pairs.map((p) => p[0]),
        { beamWidth: 1 },
      );
      for (const [i, r] of out.entries()) {
        const g = want.greedy[i]!;
        const finished = g.tokens[g.tokens.length - 1] === 1;
        const ids = finished ? g.tokens.slice(0, -1) : g.tokens;
        expect(r.text).toBe(s2s.targetTokenizer.decode(ids));
        expect(r.finished).toBe(finished);
        expect(Math.abs(r.logProb - g.log_prob)).toBeLessThan(1e-4);
      }
      s2s.dispose();
    });
  }
});
