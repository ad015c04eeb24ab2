// A static file server for the browser example (and its test): serves the repository's files
// with the two headers that make a page cross-origin isolated (Cross-Origin-Opener-Policy:
// same-origin, Cross-Origin-Embedder-Policy: require-corp), without which browsers refuse the
// shared memory that gyre's WebAssembly threads need. `--no-isolation` leaves them out.
//
//   npm run build:wasm && npm run build:browser
//   npx gyre train examples/data/names.txt --out examples/browser/names.safetensors --epochs 15
//   node examples/browser/serve.mjs [--port 8080] [--no-isolation]   # then open http://localhost:8080/examples/browser/
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
};

/** Starts the server; resolves with it and its origin. `extra` maps URL paths to files served in their place. */
export function serve({ port = 0, isolation = true, extra = {} } = {}) {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let file = extra[url.pathname] ?? path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root) && !Object.hasOwn(extra, url.pathname)) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (statSync(file).isDirectory()) file = path.join(file, 'index.html');
      statSync(file);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${url.pathname}`);
      return;
    }
    const headers = { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' };
    if (isolation) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
    }
    res.writeHead(200, headers);
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, origin: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}` });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const { origin } = await serve({ port: at >= 0 ? Number(args[at + 1]) : 8080, isolation: !args.includes('--no-isolation') });
  console.log(`serving ${root} at ${origin}/examples/browser/`);
}
