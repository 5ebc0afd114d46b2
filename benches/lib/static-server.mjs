// A small HTTP server for the time-to-ready section that counts what it sends: every response's
// path, status and bytes on the wire (status line, headers and body, read from the socket), so
// the bytes of a page load are known for every engine, also those whose Resource Timing reports
// no transfer sizes. It either serves files itself (optionally gzipped, with a strong ETag and a
// chosen Cache-Control), or forwards every request to another server unchanged (to count what
// s3-direct's own server sends).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
};

/**
 * `gzip -9` of a file, by gzip(1) as wasm-client/check-size.sh counts it (its output is a little
 * smaller than zlib's at level 9): what the server sends gzipped, and what the size tables report.
 */
export async function gzipFile(file) {
  const { stdout } = await run('gzip', ['-9', '-c', file], { encoding: 'buffer', maxBuffer: 1 << 30 });
  return stdout;
}

/**
 * Starts the server on a random loopback port. `mounts`: URL prefix → folder (the longest
 * matching prefix wins; `/` is the root); `gzip`: send `Content-Encoding: gzip` to a client that
 * accepts it; `cacheControl`: the header on every file (none when null); `upstream`: instead of
 * files, forward to this origin. Resolves to `{ url, take(), close() }`; `take()` returns the
 * responses finished since the last call, each `{ path, status, bytes, encoding }`.
 */
export async function startStaticServer({ mounts = {}, gzip: gzipped = false, cacheControl = null, upstream = null }) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const files = new Map(); // absolute path → { mtime, raw, gz, etag }
  const log = [];
  const agent = new http.Agent({ keepAlive: true });

  const load = async (file) => {
    const info = await stat(file);
    if (!info.isFile()) return null;
    const known = files.get(file);
    if (known && known.mtime === info.mtimeMs) return known;
    const raw = await readFile(file);
    const entry = {
      mtime: info.mtimeMs,
      lastModified: info.mtime.toUTCString(),
      raw,
      gz: gzipped ? await gzipFile(file) : null,
      etag: `"${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}"`,
    };
    files.set(file, entry);
    return entry;
  };

  const resolve = (urlPath) => {
    const prefix = prefixes.find((p) => urlPath.startsWith(p));
    if (!prefix) return null;
    const rel = path.normalize(decodeURIComponent(urlPath.slice(prefix.length))).replace(/^(\.\.(\/|$))+/, '');
    const file = path.join(mounts[prefix], rel);
    return file.startsWith(mounts[prefix]) ? file : null;
  };

  const serveFile = async (req, res, urlPath) => {
    const file = resolve(urlPath);
    const entry = file ? await load(file).catch(() => null) : null;
    if (!entry) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const type = types[path.extname(file)] ?? 'application/octet-stream';
    const useGz = entry.gz && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
    // The gzipped body is another representation: another ETag.
    const etag = useGz ? `${entry.etag.slice(0, -1)}-gz"` : entry.etag;
    const headers = { etag, 'last-modified': entry.lastModified };
    if (cacheControl) headers['cache-control'] = cacheControl;
    if (entry.gz) headers.vary = 'Accept-Encoding';
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').map((s) => s.trim()).includes(etag)) {
      res.writeHead(304, headers).end();
      return;
    }
    const body = useGz ? entry.gz : entry.raw;
    headers['content-type'] = type;
    headers['content-length'] = body.length;
    if (useGz) headers['content-encoding'] = 'gzip';
    res.encoding = useGz ? 'gzip' : null;
    res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : body);
  };

  const forward = (req, res) => {
    const target = new URL(req.url, upstream);
    const headers = { ...req.headers, host: target.host };
    const out = http.request(target, { method: req.method, headers, agent }, (answer) => {
      const back = { ...answer.headers };
      delete back.connection;
      delete back['keep-alive'];
      delete back['transfer-encoding'];
      res.encoding = back['content-encoding'] ?? null;
      res.writeHead(answer.statusCode, back);
      answer.pipe(res);
    });
    out.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(err.message));
    });
    req.pipe(out);
  };

  const server = http.createServer((req, res) => {
    // Requests on one connection come one after another (browsers do not pipeline HTTP/1.1),
    // so the socket's count between a request and its response's end is that response.
    const before = req.socket.bytesWritten;
    const urlPath = new URL(req.url, 'http://x').pathname;
    res.on('finish', () => {
      log.push({
        path: urlPath,
        status: res.statusCode,
        bytes: req.socket.bytesWritten - before,
        encoding: res.encoding ?? null,
      });
    });
    if (upstream) {
      forward(req, res);
      return;
    }
    serveFile(req, res, urlPath).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err.message));
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    take: () => log.splice(0),
    async close() {
      agent.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}
