// Writes the gyre encoder–decoders that torch_seq2seq.py loads into PyTorch modules: two small
// models trained for 20 epochs (so that their distributions are far from uniform) on reversing letter
// strings, saved with gyre's own `save`, and pairs.json, the text pairs and their token ids.
//
// Usage (from the repository root, after `npm run build`):
//   node __test__/pytorch/seq2seq/make_models.cjs [OUT_DIR]     # default: this script's folder
// then `python3 __test__/pytorch/seq2seq/torch_seq2seq.py` writes expected.json beside them.
const { join } = require('node:path');
const { writeFileSync } = require('node:fs');
const { Seq2Seq, seededRandom } = require('../../../dist/index.js');

const out = process.argv[2] ?? __dirname;

function reversal(n, seed) {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const s = Array.from({ length: 2 + Math.floor(random() * 5) }, () => 'abcdef'[Math.floor(random() * 6)]).join('');
    return [s, [...s].reverse().join('')];
  });
}

const CASES = {
  // 2 stacked bidirectional LSTM layers, Luong's general score, input feeding.
  lstm: { cell: 'lstm', numLayers: 2, bidirectional: true, attention: 'general', inputFeeding: true },
  // 1 GRU layer, one direction, Bahdanau's additive score, no input feeding.
  gru: { cell: 'gru', numLayers: 1, bidirectional: false, attention: 'additive', attentionUnits: 6, inputFeeding: false },
};

(async () => {
  const pairs = reversal(6, 99);
  const ids = {};
  for (const [name, c] of Object.entries(CASES)) {
    const model = await Seq2Seq.train(reversal(200, 1), {
      ...c,
      embeddingDim: 5,
      hiddenSize: 8,
      epochs: 20,
      batchSize: 16,
      learningRate: 0.01,
      validation: 0,
      seed: 3,
    });
    await model.save(join(out, `${name}.safetensors`));
    ids[name] = pairs.map(([s, t]) => ({ source: model.sourceTokenizer.encode(s), target: model.targetTokenizer.encode(t) }));
    model.dispose();
  }
  writeFileSync(join(out, "pairs.json"), `${JSON.stringify({ pairs, ids })}\n`);
})();
