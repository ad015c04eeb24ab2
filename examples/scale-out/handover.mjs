// The gyre side of the scale-out recipe (see README.md beside this file):
//   node handover.mjs start DIR     trains a gyre model on the names, exports it per layer
//   node handover.mjs continue DIR  loads the layers PyTorch trained back and trains on
// Both print the loss on a fixed evaluation set, so each hand-over can be checked: the model
// that arrives computes the same loss as the one that left.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CharTokenizer, loadModel, seededRandom, sequential, textSequences } from 'gyre';

const [stage, dir = 'scale-out-run'] = process.argv.slice(2);
const names = readFileSync(new URL('../data/names.txt', import.meta.url), 'utf8').split('\n').filter(Boolean);
// A fixed shuffle (the file is sorted), 3,000 names to train on and 500 to evaluate.
const random = seededRandom(7);
for (let i = names.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [names[i], names[j]] = [names[j], names[i]];
}
const tokenizer = CharTokenizer.fromCorpus(names);
const train = textSequences(names.slice(0, 3000), tokenizer, { maxLength: 16 });
const held = textSequences(names.slice(3000, 3500), tokenizer, { maxLength: 16 });
const fitOptions = { loss: 'crossEntropy', batchSize: 64, optimizer: { type: 'adam', learningRate: 0.005 }, seed: 3 };
const LAYERS = { embedding: 0, lstm: 1, linear: 2 };

async function report(model, label) {
  const e = await model.evaluate(held.x, held.y, { loss: 'crossEntropy' });
  console.log(`${label}: held-out loss ${e.loss.toFixed(6)}`);
  return e.loss;
}

if (stage === 'start') {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const model = sequential({
    input: { vocabSize: tokenizer.vocabSize },
    layers: [
      { type: 'embedding', dim: 32 },
      { type: 'lstm', hiddenSize: 128 },
      { type: 'dense', units: tokenizer.vocabSize },
    ],
    seed: 1,
  });
  await report(model, 'gyre, initial');
  await model.fit(train.x, train.y, { ...fitOptions, epochs: 3 });
  const loss = await report(model, 'gyre, after 3 epochs (hand-over to PyTorch)');
  for (const [name, layer] of Object.entries(LAYERS)) writeFileSync(join(dir, `${name}.safetensors`), model.exportPyTorch(layer));
  await model.save(join(dir, 'gyre.safetensors'));
  // The data as PyTorch reads it: padded token ids and each sequence's length.
  const pad = (seqs) => seqs.map((s) => [...s, ...new Array(16 - s.length).fill(0)]);
  const data = {
    vocab: tokenizer.vocabSize,
    train: { x: pad(train.x), y: pad(train.y), lengths: train.x.map((s) => s.length) },
    held: { x: pad(held.x), y: pad(held.y), lengths: held.x.map((s) => s.length) },
    gyreLoss: loss,
  };
  writeFileSync(join(dir, 'data.json'), JSON.stringify(data));
} else if (stage === 'continue') {
  const model = await loadModel(join(dir, 'gyre.safetensors'));
  for (const [name, layer] of Object.entries(LAYERS)) model.importPyTorch(layer, readFileSync(join(dir, `torch-${name}.safetensors`)));
  const torchLoss = JSON.parse(readFileSync(join(dir, 'torch.json'), 'utf8')).heldLoss;
  const loss = await report(model, 'gyre, the layers PyTorch trained (hand-over back)');
  console.log(`  PyTorch's own held-out loss ${torchLoss.toFixed(6)}; difference ${Math.abs(loss - torchLoss).toExponential(2)}`);
  // The optimizer's state stays with PyTorch: gyre continues with a fresh Adam.
  await model.fit(train.x, train.y, { ...fitOptions, epochs: 2 });
  await report(model, 'gyre, 2 more epochs');
} else {
  console.error('usage: node handover.mjs start|continue DIR');
  process.exit(2);
}
