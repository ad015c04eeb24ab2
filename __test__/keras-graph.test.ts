/**
 * Functional Keras 3 models as gyre graphs: `.keras` archives written by Keras itself
 * (`__test__/keras/make_keras_graph.py`) of encoder–decoders whose encoders return their states
 * and whose decoders start from them, loaded with `loadKerasGraph` and compared with Keras'
 * own `model.predict` (`expected_graph.json`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importKerasGraph, loadKeras, loadKerasGraph } from 'gyre';

const dir = join(__dirname, 'keras');
const expected = JSON.parse(readFileSync(join(dir, 'expected_graph.json'), 'utf8')) as {
  cases: Record<string, { inputs: Record<string, number[][] | number[][][]>; outputs: Record<string, number[]> }>;
};

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('functional Keras 3 files as graphs', () => {
  for (const [name, c] of Object.entries(expected.cases)) {
    it(`${name}: the same outputs as Keras' predict`, async () => {
      const g = await loadKerasGraph(join(dir, `${name}.keras`));
      const p = await g.predict(c.inputs);
      for (const [out, want] of Object.entries(c.outputs)) expect(maxDiff(p.outputs[out]!.data, want)).toBeLessThan(1e-5);
      g.dispose();
    });
  }

  it('maps the states: a bidirectional encoder joined forward first, a GRU state as given', async () => {
    const g = importKerasGraph(readFileSync(join(dir, 'graph_bidirectional_lstm.keras')));
    const nodes = Object.fromEntries(g.spec.nodes.map((n) => [n.name, n]));
    expect(nodes.enc?.layer).toMatchObject({ type: 'lstm', bidirectional: true, returnState: true, hiddenSize: 4 });
    expect(nodes.dec?.initialState).toBe('enc');
    expect(g.spec.inputs).toEqual([
      { name: 'src', features: 3 },
      { name: 'tgt', vocabSize: 7 },
    ]);
    g.dispose();
    const h = await loadKerasGraph(join(dir, 'graph_gru_two_outputs.keras'));
    expect(h.spec.outputs).toEqual(['y', 'level']);
    expect(h.spec.nodes.find((n) => n.name === 'dec')?.initialState).toBe('enc');
    h.dispose();
  });

  it("maps Keras' dot Attention to the graph's dot attention, and refuses what it does not have", async () => {
    const g = await loadKerasGraph(join(dir, 'graph_lstm_attention.keras'));
    const ctx = g.spec.nodes.find((n) => n.name === 'ctx');
    expect(ctx).toEqual({ name: 'ctx', layer: { type: 'attention', score: 'dot' }, inputs: ['dec', 'enc'] });
    const c = expected.cases.graph_lstm_attention!;
    const w = (await g.predict(c.inputs)).attention.ctx!;
    expect(w.shape).toEqual([3, 4, 5]);
    g.dispose();
    // The same file with options gyre's attention does not have: an error naming the layer and the option.
    const { unzipSync, zipSync, strToU8, strFromU8 } = await import('fflate');
    const files = unzipSync(readFileSync(join(dir, 'graph_lstm_attention.keras')));
    const config = JSON.parse(strFromU8(files['config.json']!));
    const layer = config.config.layers.find((l: { name: string }) => l.name === 'ctx');
    for (const [key, v, message] of [
      ['use_scale', true, /"ctx".*use_scale/],
      ['score_mode', 'concat', /"ctx".*score_mode/],
      ['dropout', 0.1, /"ctx".*dropout/],
    ] as const) {
      const saved = layer.config[key];
      layer.config[key] = v;
      const bytes = zipSync({ ...files, 'config.json': strToU8(JSON.stringify(config)) });
      expect(() => importKerasGraph(bytes)).toThrow(message);
      layer.config[key] = saved;
    }
  });

  it('a functional file given to loadKeras points to loadKerasGraph', async () => {
    await expect(loadKeras(join(dir, 'graph_gru_two_outputs.keras'))).rejects.toThrow(/loadKerasGraph/);
  });
});
