// The browser test: builds the browser entry (dist/browser/), trains a small names model in
// Node and saves it, serves the repository with the cross-origin isolation headers
// (examples/browser/serve.mjs), opens examples/browser/ in headless Chromium (Debian's
// chromium, driven by playwright-core: no browser download) and checks what the page did:
// gyre loaded as WebAssembly with simd128 and more than one thread, the model file gave
// name-like text, training in the page lowered the loss with progress events and gave names
// too; then a screenshot (target/browser/gyre-browser.png) that must show the page's text.
// Then once more without the headers: the same on one thread (the build without threads).
//
//   npm run test:browser           (needs chromium: apt-get install chromium, or CHROMIUM=/path)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../examples/browser/serve.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const executablePath = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!executablePath) {
  console.error('no chromium: install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chrome');
  process.exit(1);
}
const log = (m) => console.log(`  browser: ${m}`);

execFileSync(process.execPath, [path.join(root, 'scripts', 'build-browser.mjs')], { stdio: 'inherit' });

// A names model, as `gyre train` would write it (small, so that the test stays short).
const dir = mkdtempSync(path.join(tmpdir(), 'gyre-browser-'));
const modelFile = path.join(dir, 'names.safetensors');
execFileSync(
  process.execPath,
  [
    '-e',
    `const { TextGenerator } = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))});
     const names = require('node:fs').readFileSync(${JSON.stringify(path.join(root, 'examples', 'data', 'names.txt'))}, 'utf8').split('\\n').filter(Boolean);
     TextGenerator.train(names, { epochs: 6, hiddenSize: 64, seed: 3 }).then((g) => g.save(${JSON.stringify(modelFile)}));`,
  ],
  { stdio: 'inherit' },
);
log(`model file ${statSync(modelFile).size} bytes`);

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const failures = [];
try {
  for (const isolation of [true, false]) {
    const { server, origin } = await serve({ isolation, extra: { '/examples/browser/names.safetensors': modelFile } });
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
      const messages = [];
      page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
      await page.goto(`${origin}/examples/browser/?epochs=3`);
      await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', null, {
        timeout: 240_000,
      });
      const r = await page.evaluate(() => window.gyreDemo);
      const what = isolation ? 'isolated' : 'not isolated';
      if (r.error) {
        failures.push(`${what}: ${r.error}\n${messages.join('\n')}`);
        continue;
      }
      assert.equal(r.backend, 'wasm');
      assert.equal(r.simdLevel, 'simd128');
      assert.equal(r.crossOriginIsolated, isolation, 'crossOriginIsolated');
      // Threads where the page may share memory; the build without threads elsewhere.
      if (isolation) assert.ok(r.threads > 1, `threads in an isolated page: ${r.threads}`);
      else assert.equal(r.threads, 1, 'one thread in a page that is not isolated');
      const namelike = (list) => list.length === 12 && list.filter((n) => /^[A-Za-z][a-z'-]{1,19}$/.test(n)).length >= 9;
      assert.ok(namelike(r.loadedNames), `names from the model file: ${r.loadedNames.join(', ')}`);
      assert.ok(namelike(r.trainedNames), `names from the model trained in the page: ${r.trainedNames.join(', ')}`);
      assert.equal(r.losses.length, 3, 'epochs trained');
      assert.ok(r.losses[2] < r.losses[0], `loss fell: ${r.losses.join(' → ')}`);
      assert.ok(r.progressEvents > 3, 'progress events');
      log(
        `${what}: ${r.threads} thread(s); from the file: ${r.loadedNames.slice(0, 6).join(', ')}; trained in ${r.trainSeconds.toFixed(1)} s ` +
          `(loss ${r.losses.map((l) => l.toFixed(3)).join(' → ')}): ${r.trainedNames.slice(0, 6).join(', ')}`,
      );
      if (isolation) {
        // The screenshot shows what the page wrote: its runtime line and the names in both lists.
        const shot = path.join(root, 'target', 'browser', 'gyre-browser.png');
        mkdirSync(path.dirname(shot), { recursive: true });
        await page.screenshot({ path: shot, fullPage: true });
        const png = readFileSync(shot);
        assert.equal(png.subarray(1, 4).toString(), 'PNG');
        const width = png.readUInt32BE(16);
        assert.equal(width, 900, 'screenshot width');
        const text = (await page.textContent('body')) ?? '';
        assert.match(text, /gyre wasm \(simd128\), \d+ thread\(s\), cross-origin isolated/);
        for (const n of [...r.loadedNames.slice(0, 3), ...r.trainedNames.slice(0, 3)]) assert.ok(text.includes(n), `the page shows ${n}`);
        assert.ok(png.length > 20_000, `a screenshot with content (${png.length} bytes)`);
        log(`screenshot ${path.relative(root, shot)} (${png.length} bytes, ${width} px wide)`);
      }
      await page.close();
    } finally {
      server.close();
    }
  }
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`FAIL: the browser page\n${failures.join('\n\n')}`);
  process.exit(1);
}
console.log('PASS: browser test');
