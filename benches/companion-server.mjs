// Uppy Companion (@uppy/companion) as an S3 multipart signing server on a random loopback port,
// configured from BENCH_* variables by lib/servers.mjs. It also serves the bench pages (from
// BENCH_WEB_DIR, under /bench/) so that Uppy talks to Companion from the same origin, as it would
// in a typical deployment. Prints `listening on http://…` when ready.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as companion from '@uppy/companion';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const webDir = env('BENCH_WEB_DIR');
const types = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json',
};

let companionApp;
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname.startsWith('/bench/')) {
    const file = path.join(webDir, path.normalize(url.pathname.slice('/bench/'.length)));
    if (!file.startsWith(webDir + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
    return;
  }
  companionApp(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  ({ app: companionApp } = companion.app({
    s3: {
      key: env('BENCH_STORE_KEY'),
      secret: env('BENCH_STORE_SECRET'),
      bucket: env('BENCH_STORE_BUCKET'),
      region: env('BENCH_STORE_REGION'),
      endpoint: env('BENCH_STORE_ENDPOINT'),
      forcePathStyle: true,
    },
    server: { host: `127.0.0.1:${port}`, protocol: 'http' },
    filePath: env('BENCH_DATA_DIR'),
    secret: randomBytes(32).toString('hex'),
    corsOrigins: true,
    uploadUrls: [`http://127.0.0.1:${port}/`],
  }));
  console.log(`listening on http://127.0.0.1:${port}`);
});
