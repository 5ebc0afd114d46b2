// A fault-injecting HTTP proxy on loopback, between the browser and the store.
//
// The signing server is started with `--public-endpoint` pointing here, so presigned URLs name
// the proxy's address; SigV4 signs the Host header, and the proxy forwards requests with their
// Host unchanged, so the store checks the signature against the address it was made for. Only
// the socket the bytes go to changes.
//
// Every part PUT (a request with `partNumber` and `uploadId`) is offered to `decide(info)`,
// which returns what to do with it:
//   undefined / 'pass'          forward untouched
//   { status, code }            answer like S3 would (XML error, CORS headers) without forwarding
//   { cutAfter: bytes }         forward that many body bytes, then cut both connections
//   { delayMs }                 wait, then forward
//   { corruptAt: offset }       flip one byte of the body at `offset` while forwarding
//   { hold: true }              never answer (until the test calls dropHeld())
//   { stallAfter: bytes }       forward that many body bytes, then read no more and never answer
//                               (a stall mid-body; cut by dropHeld())
// `refusing` (true/false) makes the proxy a host that is not there: every connection and request
// is cut on arrival (part PUTs are logged with outcome 'refused'), as when the network is gone.
// A whole-object PUT (a small file's single PUT: no `partNumber`) is offered to `decideObject(info)`
// the same way, when a test sets one, and logged in `objects`.
// `throttle` (bytes per second) slows every part body; `enforceExpiry` answers a PUT whose
// X-Amz-Date + X-Amz-Expires has passed with S3's 403 AccessDenied, like AWS does, for stores
// that do not check expiry themselves.
import http from 'node:http';
import { once } from 'node:events';

const corsHeaders = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'ETag',
};

function s3Error(res, status, code, message = code) {
  res.writeHead(status, { 'content-type': 'application/xml', ...corsHeaders });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

/** When a SigV4 query-signed URL stops being valid, in ms since the epoch, or null. */
function urlDeadline(url) {
  const date = url.searchParams.get('X-Amz-Date');
  const expires = Number(url.searchParams.get('X-Amz-Expires'));
  const m = date && /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (!m || !Number.isFinite(expires)) return null;
  return Date.UTC(m[1], m[2] - 1, m[3], m[4], m[5], m[6]) + expires * 1000;
}

export async function startProxy({ decide = () => undefined, throttle = 0, enforceExpiry = false } = {}) {
  const state = {
    target: null, // { host, port }
    decide,
    decideObject: null,
    throttle,
    enforceExpiry,
    refusing: false,
    refused: 0, // connections and requests cut while refusing
    /** Every part PUT seen: { part, uploadId, at, action, outcome } in arrival order (`at`: ms since the epoch). */
    log: [],
    /** Every whole-object PUT offered to `decideObject`: { path, at, action, outcome }. */
    objects: [],
    held: [],
    sockets: new Set(),
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://proxy');
    const part = url.searchParams.get('partNumber');
    const isPart = req.method === 'PUT' && part !== null && url.searchParams.has('uploadId');
    if (state.refusing) {
      if (isPart) state.log.push({ part: Number(part), uploadId: url.searchParams.get('uploadId'), at: Date.now(), action: 'refuse', outcome: 'refused' });
      state.refused += 1;
      req.socket.destroy();
      return undefined;
    }
    const isObject = req.method === 'PUT' && part === null && !url.searchParams.has('uploadId')
      && state.decideObject !== null;
    if (!isPart && !isObject) return forward(req, res, {});
    const entry = isPart
      ? { part: Number(part), uploadId: url.searchParams.get('uploadId') }
      : { path: url.pathname };
    Object.assign(entry, { at: Date.now(), action: 'pass', outcome: 'pending' });
    (isPart ? state.log : state.objects).push(entry);
    const decide = isPart ? state.decide : state.decideObject;
    if (state.enforceExpiry) {
      const deadline = urlDeadline(url);
      if (deadline !== null && Date.now() > deadline) {
        entry.action = 'expired';
        entry.outcome = 403;
        req.resume();
        return req.once('end', () => s3Error(res, 403, 'AccessDenied', 'Request has expired'));
      }
    }
    const action = decide(entry) ?? 'pass';
    entry.action = action;
    if (action === 'pass') return forward(req, res, {}, entry);
    if (action.hold) {
      state.held.push({ req, res, entry });
      return undefined;
    }
    if (action.status) {
      entry.outcome = action.status;
      req.resume();
      return req.once('end', () => s3Error(res, action.status, action.code ?? 'InternalError'));
    }
    if (action.delayMs) {
      return setTimeout(() => forward(req, res, {}, entry), action.delayMs);
    }
    return forward(req, res, action, entry);
  });
  server.on('connection', (s) => {
    if (state.refusing) {
      state.refused += 1;
      s.destroy();
      return;
    }
    state.sockets.add(s);
    s.once('close', () => state.sockets.delete(s));
  });

  function forward(req, res, { cutAfter, corruptAt, stallAfter }, entry) {
    if (!state.target) {
      res.writeHead(502, corsHeaders);
      return res.end('proxy has no target yet');
    }
    const upstream = http.request({
      host: state.target.host,
      port: state.target.port,
      method: req.method,
      path: req.url,
      headers: req.headers, // Host included, unchanged: the signature covers it.
    });
    upstream.on('response', (up) => {
      if (entry) entry.outcome = up.statusCode;
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (entry && entry.outcome === 'pending') entry.outcome = 'upstream-error';
      res.destroy();
    });
    let sent = 0;
    const perMs = state.throttle / 1000;
    const started = Date.now();
    req.on('data', (chunk) => {
      let out = chunk;
      if (corruptAt !== undefined && corruptAt >= sent && corruptAt < sent + chunk.length) {
        out = Buffer.from(chunk);
        out[corruptAt - sent] ^= 0xff;
      }
      if (stallAfter !== undefined && sent + out.length >= stallAfter) {
        upstream.write(out.subarray(0, Math.max(0, stallAfter - sent)));
        sent = stallAfter;
        req.pause();
        req.removeAllListeners('data');
        req.removeAllListeners('end');
        state.held.push({ req, res, entry, upstream });
        return;
      }
      if (cutAfter !== undefined && sent + out.length >= cutAfter) {
        upstream.write(out.subarray(0, Math.max(0, cutAfter - sent)));
        if (entry) entry.outcome = 'cut';
        upstream.destroy();
        req.socket.destroy();
        return;
      }
      sent += out.length;
      upstream.write(out);
      if (perMs > 0) {
        const due = started + sent / perMs;
        const wait = due - Date.now();
        if (wait > 0) {
          req.pause();
          setTimeout(() => req.resume(), wait);
        }
      }
    });
    req.on('end', () => upstream.end());
    req.on('error', () => upstream.destroy());
    return undefined;
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    log: state.log,
    objects: state.objects,
    /** Points the proxy at the store. */
    setTarget(endpoint) {
      const u = new URL(endpoint);
      state.target = { host: u.hostname, port: Number(u.port || 80) };
    },
    set decide(fn) { state.decide = fn; },
    /** `fn` decides whole-object PUTs from now on; null forwards them untouched, unlogged. */
    set decideObject(fn) { state.decideObject = fn; },
    set throttle(bps) { state.throttle = bps; },
    /** Connections and requests cut so far because the proxy was refusing. */
    get refused() { return state.refused; },
    /** While true, every connection is cut on arrival; turning it on also cuts the open ones. */
    set refusing(on) {
      state.refusing = on;
      if (on) {
        for (const s of state.sockets) s.destroy();
        state.held.splice(0);
      }
    },
    get held() { return state.held.map((h) => h.entry.part); },
    /** Cuts every held request (the browser sees a network error). */
    dropHeld() {
      for (const h of state.held.splice(0)) {
        h.entry.outcome = 'dropped';
        h.req.socket.destroy();
        h.upstream?.destroy();
      }
    },
    /** Parts whose PUT got a 2xx answer from the store, among the PUTs logged from index `from`. */
    storedParts(from = 0) {
      const stored = state.log.slice(from).filter((e) => e.outcome >= 200 && e.outcome < 300);
      return [...new Set(stored.map((e) => e.part))];
    },
    async stop() {
      this.dropHeld();
      for (const s of state.sockets) s.destroy();
      server.close();
    },
  };
}

/** A seeded generator (mulberry32), so a failing random-faults run can be replayed. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
