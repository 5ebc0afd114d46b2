// A proxy in front of the signing server that loses answers: it forwards every request, and for
// the ones `drop(info)` picks it lets the server answer in full, then destroys the browser's
// connection without passing the answer on — a completion whose answer was lost on the way back
// (a proxy restart, a cut mobile link).
//
// Every answer passed on closes its connection: Chromium resends a request by itself when a
// reused keep-alive connection closes before the answer, so with reuse the retry seen could be the
// browser's, not the client's. The page is loaded through the proxy, so the client's relative
// `/s3` calls go through it too.
// The `Host` header is rewritten to the server's own address: an open server answers only its
// loopback names on its port.
import http from 'node:http';
import { once } from 'node:events';

/**
 * Starts the proxy before the server at `target` (`http://127.0.0.1:PORT`). `drop({ method, path })`
 * says whether to lose this request's answer. Resolves to `{ url, log, close }`; `log` lists every
 * request as `{ method, path, status, dropped }` in arrival order.
 */
export async function startAnswerDropper(target, { drop = () => false } = {}) {
  const upstream = new URL(target);
  const log = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://proxy').pathname;
    const entry = { method: req.method, path, status: null, dropped: Boolean(drop({ method: req.method, path })) };
    log.push(entry);
    const out = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: upstream.host },
    }, (answer) => {
      entry.status = answer.statusCode;
      if (!entry.dropped) {
        res.writeHead(answer.statusCode, { ...answer.headers, connection: 'close' });
        answer.pipe(res);
        return;
      }
      // Read the whole answer, so the server has done everything it would do, then cut.
      answer.resume();
      answer.once('end', () => req.socket.destroy());
    });
    out.once('error', () => req.socket.destroy());
    req.pipe(out);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
