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

  it('a functional file given to loadKeras points to loadKerasGraph', async () => {
    await expect(loadKeras(join(dir, 'graph_gru_two_outputs.keras'))).rejects.toThrow(/loadKerasGraph/);
  });
});
