// A round-robin HTTP load balancer on loopback, in front of several s3-direct replicas.
//
// Every request goes to the next replica in turn, whatever connection it came on: strictly
// alternating, with no stickiness, so two consecutive calls of one upload (create, then sign;
// sign, then complete) land on different replicas. That is the point: it shows the servers keep
// no state one replica has and another lacks. Requests are forwarded with their Host header
// unchanged, as a reverse proxy would; a replica that does not answer gets a 502 (no failover,
// which would hide which replica served what).
//
// With `failover: true` it is instead the kind of front a store cluster gets: still round robin,
// but a target that refuses the connection is skipped for the next one, before any byte of the
// request is read, so a request is only lost if every target is down. Presigned URLs can name
// such a front (`--public-endpoint`): the Host header, which SigV4 signs, passes unchanged.
//
// `log` holds one entry per request, `{ replica, kind, method, status, skipped }` in arrival order
// (`skipped`: targets that refused the connection first, in failover mode), where
// `kind` names the signing API call (`create`, `sign`, `list`, `complete`, `abort`, `params`) or
// `other` (the page, the package, probes); `counts(kind?, from?)` sums them per target.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

/** The signing API call a request is, from its method and path (routes under `/s3`). */
export function callKind(method, pathname) {
  const rest = pathname.startsWith('/s3/') ? pathname.slice(3) : null;
  if (rest === null) return 'other';
  if (rest === '/params' && method === 'GET') return 'params';
  if (rest === '/multipart' && method === 'POST') return 'create';
  const m = /^\/multipart\/[^/]+(\/[^/]+)?$/.exec(rest);
  if (!m) return 'other';
  if (m[1] === undefined) {
    if (method === 'GET') return 'list';
    if (method === 'DELETE') return 'abort';
    return 'other';
  }
  if (m[1] === '/complete' && method === 'POST') return 'complete';
  if (method === 'GET') return 'sign'; // `/batch` or one part number
  return 'other';
}

/** Starts the balancer over `targets` (base URLs such as `http://127.0.0.1:8080`). */
export async function startBalancer(targets, { failover = false } = {}) {
  if (targets.length === 0) throw new Error('a balancer needs at least one target');
  const upstreams = targets.map((t) => new URL(t));
  const agent = new http.Agent({ keepAlive: true });
  const log = [];
  let next = 0;
  const sockets = new Set();

  /** A TCP connection to the first target from `first` on that accepts one, or null. */
  function connectFrom(first, entry) {
    return new Promise((resolve) => {
      const attempt = (k) => {
        if (k === upstreams.length) {
          resolve(null);
          return;
        }
        const replica = (first + k) % upstreams.length;
        const target = upstreams[replica];
        const socket = net.connect({ host: target.hostname, port: Number(target.port) });
        socket.once('connect', () => resolve({ replica, socket }));
        socket.once('error', () => {
          socket.destroy();
          entry.skipped.push(replica);
          attempt(k + 1);
        });
      };
      attempt(0);
    });
  }

  function badGateway(res, entry, message) {
    entry.status = 502;
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'bad_gateway', message }));
  }

  function forward(req, res, entry, replica, socket) {
    entry.replica = replica;
    const target = upstreams[replica];
    const upstream = http.request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      // A connection made for one request is closed after it (no agent keeps it).
      headers: socket ? { ...req.headers, connection: 'close' } : req.headers,
      ...(socket ? { createConnection: () => socket } : { agent }),
    });
    upstream.on('response', (up) => {
      entry.status = up.statusCode;
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      if (entry.status !== null) {
        res.destroy(); // the answer had started: cut it, as a real balancer would
        return;
      }
      badGateway(res, entry, `target ${replica}: ${err.message}`);
    });
    req.pipe(upstream);
  }

  const server = http.createServer((req, res) => {
    const first = next;
    next = (next + 1) % upstreams.length;
    const { pathname } = new URL(req.url, 'http://balancer');
    const entry = {
      replica: first, kind: callKind(req.method, pathname), method: req.method, status: null, skipped: [],
    };
    log.push(entry);
    if (!failover) {
      forward(req, res, entry, first, null);
      return;
    }
    connectFrom(first, entry).then((got) => {
      if (got) forward(req, res, entry, got.replica, got.socket);
      else badGateway(res, entry, 'no target accepts connections');
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    /** Requests per target (of one `kind`, or all; from log entry `from` on), indexed like `targets`. */
    counts(kind = undefined, from = 0) {
      const out = upstreams.map(() => 0);
      for (const e of log.slice(from)) if (kind === undefined || e.kind === kind) out[e.replica] += 1;
      return out;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      agent.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
