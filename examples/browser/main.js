// gyre in a browser page: loads a trained names model from a file, generates names with it
// (generation runs gyre's stream API, one step per character), then trains a small model on
// names in the page with a progress bar and generates from it. Served by
// `node examples/browser/serve.mjs` (the headers that give WebAssembly threads), which also
// serves the bundle (dist/browser/, `npm run build:browser`) and the model file.
//
// The page sets `document.body.dataset.state` to "done" or "error" when it has finished, and
// `window.gyreDemo` to what it produced (the browser test reads both).
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const modelUrl = params.get('model') ?? '/examples/browser/names.safetensors';
const namesUrl = params.get('names') ?? '/examples/data/names.txt';
const result = { loadedNames: [], trainedNames: [], losses: [], progressEvents: 0 };
window.gyreDemo = result;

function show(list, names) {
  list.replaceChildren(...names.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
}

function names(generator, count, randomSeed) {
  return Array.from({ length: count }, (_, i) => generator.generate({ temperature: 0.8, maxLength: 20, randomSeed: randomSeed + i }).trim());
}

try {
  // Imported here, so that a failure to load shows on the page.
  const { backend, fromBuffer, getNumThreads, simdLevel, TextGenerator } = await import('/dist/browser/gyre.js');
  result.backend = backend();
  result.simdLevel = simdLevel();
  result.threads = getNumThreads();
  result.crossOriginIsolated = globalThis.crossOriginIsolated === true;
  $('runtime').textContent =
    `gyre ${result.backend} (${result.simdLevel}), ${result.threads} thread(s)` +
    (result.crossOriginIsolated ? ', cross-origin isolated' : ' (not cross-origin isolated: the build without threads)');

  // 1. A model file, as `gyre train` or `model.save` wrote it.
  const response = await fetch(modelUrl);
  if (!response.ok) throw new Error(`${modelUrl}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const loaded = TextGenerator.fromModel(fromBuffer(bytes));
  result.loadedNames = names(loaded, 12, 1);
  show($('loaded-names'), result.loadedNames);
  $('load-status').textContent = `${modelUrl}: ${bytes.length.toLocaleString()} bytes, ${loaded.model.parameterCount.toLocaleString()} parameters`;

  // 2. Training in the page, off the main thread's event loop.
  const text = await (await fetch(namesUrl)).text();
  const corpus = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const epochs = Number(params.get('epochs') ?? 4);
  const started = performance.now();
  const trained = await TextGenerator.train(corpus, {
    hiddenSize: 48,
    epochs,
    batchSize: 32,
    seed: 1,
    onProgress: (e) => {
      result.progressEvents++;
      if (e.kind === 'batch' || e.kind === 'epoch') {
        const done = (e.epoch - 1 + (e.kind === 'epoch' ? 1 : e.batch / (e.batches ?? e.batch))) / epochs;
        $('progress').value = Math.min(1, done);
      }
      if (e.kind === 'epoch') {
        result.losses.push(e.loss);
        $('train-status').textContent = `epoch ${e.epoch}/${epochs}: loss ${e.loss.toFixed(3)}`;
      }
    },
  });
  result.trainSeconds = (performance.now() - started) / 1000;
  result.trainedNames = names(trained, 12, 100);
  show($('trained-names'), result.trainedNames);
  $('train-status').textContent =
    `${corpus.length} names, ${epochs} epochs in ${result.trainSeconds.toFixed(1)} s; loss ${result.losses[0]?.toFixed(3)} → ${result.losses.at(-1)?.toFixed(3)}`;
  document.body.dataset.state = 'done';
} catch (err) {
  result.error = String(err?.message ?? err);
  result.crossOriginIsolated = globalThis.crossOriginIsolated === true;
  $('error').textContent = result.error;
  document.body.dataset.state = 'error';
}
