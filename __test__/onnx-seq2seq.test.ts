/**
 * An encoder–decoder exported to ONNX (`seq2seqToOnnx`): the encoder and one decoder step run
 * in onnxruntime-node, the step in a beam loop written here as gyre's beam search is (best
 * extensions first, a hypothesis finished by the end token), give `Seq2Seq.transduce`'s outputs
 * and log-probabilities, for every cell and score.
 */
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, Seq2Seq, seededRandom, seq2seqToOnnx, type TextPair } from 'gyre';

function reversal(n: number, seed: number): TextPair[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const s = Array.from({ length: 2 + Math.floor(random() * 5) }, () => 'abcdef'[Math.floor(random() * 6)]).join('');
    return [s, [...s].reverse().join('')] as const;
  });
}

interface Hyp {
  ids: number[];
  logProb: number;
  finished: boolean;
}

/** Beam search over the exported step model for one source, as gyre's beam search runs. */
async function onnxBeam(
  encoder: ort.InferenceSession,
  step: ort.InferenceSession,
  source: number[],
  o: { width: number; maxLength: number; start: number; end: number; lstm: boolean; feeding: boolean; d: number },
): Promise<Hyp[]> {
  const enc = await encoder.run({
    source: new ort.Tensor('int64', BigInt64Array.from(source, BigInt), [1, source.length]),
    sequence_lens: new ort.Tensor('int32', Int32Array.of(source.length), [1]),
  });
  const memory = enc.memory!.data as Float32Array;
  const t = source.length;
  let live: { ids: number[]; logProb: number; h: Float32Array; c: Float32Array; ht: Float32Array }[] = [
    {
      ids: [],
      logProb: 0,
      h: (enc.h0!.data as Float32Array).slice(),
      c: o.lstm ? (enc.c0!.data as Float32Array).slice() : new Float32Array(o.d),
      ht: new Float32Array(o.d),
    },
  ];
  const finished: Hyp[] = [];
  for (let k = 0; k < o.maxLength && live.length > 0; k++) {
    const r = live.length;
    const join = (f: (x: (typeof live)[number]) => Float32Array) => {
      const out = new Float32Array(r * o.d);
      live.forEach((x, i) => {
        out.set(f(x), i * o.d);
      });
      return new ort.Tensor('float32', out, [r, o.d]);
    };
    const mem = new Float32Array(r * t * o.d);
    for (let i = 0; i < r; i++) mem.set(memory, i * t * o.d);
    const feeds: Record<string, ort.Tensor> = {
      token: new ort.Tensor(
        'int64',
        BigInt64Array.from(live, (x) => BigInt(x.ids.at(-1) ?? o.start)),
        [r],
      ),
      h: join((x) => x.h),
      memory: new ort.Tensor('float32', mem, [r, t, o.d]),
      sequence_lens: new ort.Tensor('int32', new Int32Array(r).fill(t), [r]),
    };
    if (o.lstm) feeds.c = join((x) => x.c);
    if (o.feeding) feeds.h_tilde = join((x) => x.ht);
    const out = await step.run(feeds);
    const lp = out.log_probs!.data as Float32Array;
    const v = lp.length / r;
    const cands: { lp: number; j: number; tok: number }[] = [];
    for (let j = 0; j < r; j++) for (let tok = 0; tok < v; tok++) cands.push({ lp: live[j]!.logProb + lp[j * v + tok]!, j, tok });
    cands.sort((a, b) => b.lp - a.lp || a.j - b.j || a.tok - b.tok);
    const next: typeof live = [];
    const last = k + 1 === o.maxLength;
    for (const cand of cands) {
      if (next.length >= o.width || finished.length >= o.width) break;
      const ids = [...live[cand.j]!.ids, cand.tok];
      if (cand.tok === o.end || last) {
        finished.push({ ids, logProb: cand.lp, finished: cand.tok === o.end });
      } else {
        const row = (name: string) => (out[name]!.data as Float32Array).slice(cand.j * o.d, (cand.j + 1) * o.d);
        next.push({ ids, logProb: cand.lp, h: row('h_next'), c: o.lstm ? row('c_next') : new Float32Array(o.d), ht: row('h_tilde_next') });
      }
    }
    live = next;
  }
  return finished.sort((a, b) => b.logProb - a.logProb);
}

describe('seq2seqToOnnx', () => {
  const pairs = reversal(400, 1);
  const cases = [
    { cell: 'lstm', attention: 'general', inputFeeding: true, numLayers: 2 },
    { cell: 'gru', attention: 'additive', inputFeeding: false, numLayers: 1 },
    { cell: 'rnn', attention: 'dot', inputFeeding: true, numLayers: 1 },
  ] as const;
  const models: Seq2Seq[] = [];
  beforeAll(async () => {
    for (const c of cases)
      models.push(await Seq2Seq.train(pairs, { ...c, hiddenSize: 16, embeddingDim: 8, epochs: 6, learningRate: 0.01, seed: 2 }));
  }, 60_000);

  cases.forEach((c, i) => {
    it(`runs the encoder and a beam loop over the decoder step in onnxruntime as gyre decodes (${c.cell}, ${c.attention})`, async () => {
      const model = models[i]!;
      const { encoder, decoderStep } = seq2seqToOnnx(model);
      const enc = await ort.InferenceSession.create(encoder);
      const step = await ort.InferenceSession.create(decoderStep);
      const config = model.config as { start: number; end: number; hidden: number; bidirectional: boolean };
      const d = config.hidden * (config.bidirectional ? 2 : 1);
      for (const text of ['abcdef', 'fab', 'cc', 'deadbeef']) {
        for (const width of [1, 3]) {
          const ours = (await model.transduce(text, { beamWidth: width, nBest: width, maxLength: 12 }))[0]!;
          const theirs = await onnxBeam(enc, step, model.sourceTokenizer.encode(text), {
            width,
            maxLength: 12,
            start: config.start,
            end: config.end,
            lstm: c.cell === 'lstm',
            feeding: c.inputFeeding,
            d,
          });
          expect(theirs).toHaveLength(ours.nBest.length);
          ours.nBest.forEach((h, k) => {
            const t = theirs[k]!;
            const body = t.finished ? t.ids.slice(0, -1) : t.ids;
            expect(model.targetTokenizer.decode(body)).toBe(h.text);
            expect(t.finished).toBe(h.finished);
            expect(t.logProb).toBeCloseTo(h.logProb, 4);
          });
        }
      }
    });
  });

  it('the encoder masks padded steps: a padded batch gives each source its own memory and states', async () => {
    const model = models[0]!;
    const enc = await ort.InferenceSession.create(seq2seqToOnnx(model).encoder);
    const a = model.sourceTokenizer.encode('abcdef');
    const b = model.sourceTokenizer.encode('fa');
    const batch = await enc.run({
      source: new ort.Tensor('int64', BigInt64Array.from([...a, ...b, 999, 999, 999, 999], BigInt), [2, 6]),
      sequence_lens: new ort.Tensor('int32', Int32Array.of(6, 2), [2]),
    });
    const alone = await enc.run({
      source: new ort.Tensor('int64', BigInt64Array.from(b, BigInt), [1, 2]),
      sequence_lens: new ort.Tensor('int32', Int32Array.of(2), [1]),
    });
    const d = (batch.h0!.dims[1] as number) ?? 0;
    const h0 = (batch.h0!.data as Float32Array).slice(d, 2 * d);
    Array.from(alone.h0!.data as Float32Array).forEach((v, k) => {
      expect(h0[k]).toBeCloseTo(v, 6);
    });
    const mem = batch.memory!.data as Float32Array;
    // The padded steps of the second source are zeros.
    for (let k = 6 * d + 2 * d; k < 12 * d; k++) expect(mem[k]).toBe(0);
  });

  it('refuses what is not a Seq2Seq and unknown options', () => {
    expect(() => seq2seqToOnnx({} as never)).toThrow(InvalidArgumentError);
    expect(() => seq2seqToOnnx(models[0]!, { depth: 1 } as never)).toThrow(/unknown option depth/);
    expect(() => seq2seqToOnnx(models[0]!, { opset: 3 })).toThrow(/opset/);
  });
});
