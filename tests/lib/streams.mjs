// Stream uploads from a page (tests/e2e/streams.test.mjs): streams of pseudo-random bytes made in
// the page chunk by chunk, hashed as they are made, and the browser's memory meanwhile.
import { readFileSync } from 'node:fs';
import { childrenNamed, processTree, pss } from '../../benches/lib/proc.mjs';

/**
 * Run in the page (self-contained): installs `window.streams`, whose `make(size, { seed, chunk,
 * failAt })` answers `{ stream, done }`: `stream` yields `size` pseudo-random bytes (xorshift32 of
 * `seed`) in chunks of `chunk` bytes as it is pulled, never holding more than one chunk; `done`
 * resolves to their SHA-256 (hex) once the last was pulled; `failAt` errors the stream after that
 * many bytes; `cancelled` (a field of the result) turns true when the stream's `cancel` runs. The
 * SHA-256 is computed incrementally, chunk by chunk, because `crypto.subtle` hashes only whole
 * buffers; `selfCheck()` compares it with `crypto.subtle` on a few sizes.
 */
export function installStreams() {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  /** Incremental SHA-256: `update(bytes)` any number of times, then `hex()`. */
  function sha256() {
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const w = new Uint32Array(64);
    const block = new Uint8Array(64);
    let filled = 0;
    let length = 0;
    const compress = (b, at) => {
      for (let i = 0; i < 16; i += 1) {
        const j = at + i * 4;
        w[i] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3];
      }
      for (let i = 16; i < 64; i += 1) {
        const x = w[i - 15];
        const y = w[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
      }
      let [a, bb, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i += 1) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
        hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    };
    const update = (bytes) => {
      let i = 0;
      length += bytes.length;
      if (filled > 0) {
        const n = Math.min(64 - filled, bytes.length);
        block.set(bytes.subarray(0, n), filled);
        filled += n;
        i = n;
        if (filled < 64) return;
        compress(block, 0);
        filled = 0;
      }
      for (; i + 64 <= bytes.length; i += 64) compress(bytes, i);
      block.set(bytes.subarray(i), 0);
      filled = bytes.length - i;
    };
    const hex = () => {
      const bits = length * 8;
      const tail = new Uint8Array((filled < 56 ? 64 : 128) - filled);
      tail[0] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
      view.setUint32(tail.length - 4, bits >>> 0);
      update(tail);
      return [...h].map((x) => x.toString(16).padStart(8, '0')).join('');
    };
    return { update, hex };
  }

  function make(size, { seed = 1, chunk = 999_983, failAt = null } = {}) {
    let state = seed >>> 0 || 1;
    let made = 0;
    const hash = sha256();
    let finish;
    const done = new Promise((resolve) => { finish = resolve; });
    const out = { cancelled: false, done, made: () => made };
    out.stream = new ReadableStream({
      pull(controller) {
        if (failAt !== null && made >= failAt) {
          controller.error(new Error(`the producer broke after ${made} bytes`));
          return;
        }
        if (made >= size) {
          controller.close();
          finish(hash.hex());
          return;
        }
        const n = Math.min(chunk, size - made);
        const words = new Uint32Array(Math.ceil(n / 4));
        for (let i = 0; i < words.length; i += 1) {
          state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
          words[i] = state;
        }
        const bytes = new Uint8Array(words.buffer, 0, n);
        hash.update(bytes);
        made += n;
        controller.enqueue(bytes);
      },
      cancel() {
        out.cancelled = true;
      },
    });
    return out;
  }

  async function selfCheck() {
    const out = [];
    for (const n of [0, 1, 55, 56, 64, 1000, 3 * 1024 * 1024 + 7]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 255);
      const h = sha256();
      h.update(bytes.subarray(0, n >> 1));
      h.update(bytes.subarray(n >> 1));
      const want = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
        .map((b) => b.toString(16).padStart(2, '0')).join('');
      if (h.hex() !== want) out.push(n);
    }
    return out;
  }

  /**
   * Starts uploading a stream of `make(size, stream)` with a new `Uploader(uploader)` and
   * `options` (filename and onProgress added); `window.streams.run.outcome` is set when it ends:
   * `{ result | error: { code, message }, sha256, made, cancelled, progress }`, `progress` every
   * event's `[bytesSent, bytesTotal, partsTotal, phase, bytesConfirmed, bytes made so far]`.
   */
  function start({ size, stream = {}, uploader = {}, options = {}, name }) {
    const source = make(size, stream);
    const progress = [];
    const handle = new window.s3direct.Uploader(uploader).start(source.stream, {
      ...options,
      filename: name,
      onProgress: (p) => progress.push([p.bytesSent, p.bytesTotal, p.partsTotal, p.phase, p.bytesConfirmed, source.made()]),
    });
    const run = { handle, source, progress, outcome: null };
    window.streams.run = run;
    const end = (o) => {
      run.outcome = { ...o, made: source.made(), cancelled: source.cancelled, progress };
    };
    handle.promise.then(
      async (result) => end({ result, sha256: await source.done }),
      (e) => end({ error: { code: e.code, message: e.message } }),
    );
  }

  window.streams = { make, selfCheck, start };
}

/** Which of Chromium's processes `pid` is: `browser`, `renderer`, `gpu-process`, or a utility's service. */
function processKind(pid) {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const service = /--utility-sub-type=([\w.]+)/.exec(args)?.[1];
    return service ?? /--type=([\w-]+)/.exec(args)?.[1] ?? 'browser';
  } catch {
    return 'gone';
  }
}

/**
 * Samples the PSS of Chromium's processes (shared pages split between the processes that map
 * them, as benches/lib/engines.mjs measures the browser) every 200 ms from now: `stop()` answers
 * `{ baseline, peak, growth, kinds, where }` in bytes: `kinds` each kind of process's own peak
 * growth (`browser`, `renderer` — the page and its workers —, a utility's service …), `where`
 * their growth at the whole browser's peak, as text.
 */
export function watchBrowserMemory() {
  const sample = () => {
    const kinds = {};
    for (const root of childrenNamed(process.pid, 'chrom')) {
      for (const pid of processTree(root)) {
        const kind = processKind(pid);
        kinds[kind] = (kinds[kind] ?? 0) + pss(pid);
      }
    }
    return { total: Object.values(kinds).reduce((a, b) => a + b, 0), kinds };
  };
  const first = sample();
  if (first.total === 0) throw new Error('found no Chromium process to measure');
  let peak = first;
  const peaks = { ...first.kinds };
  const take = () => {
    const now = sample();
    if (now.total > peak.total) peak = now;
    for (const [kind, bytes] of Object.entries(now.kinds)) peaks[kind] = Math.max(peaks[kind] ?? 0, bytes);
  };
  const timer = setInterval(take, 200);
  return {
    stop() {
      clearInterval(timer);
      take();
      const grown = (kinds) => Object.fromEntries(Object.entries(kinds)
        .map(([kind, bytes]) => [kind, bytes - (first.kinds[kind] ?? 0)]));
      const where = Object.entries(grown(peak.kinds))
        .filter(([, bytes]) => Math.abs(bytes) >= 1024 * 1024)
        .map(([kind, bytes]) => `${kind} ${bytes > 0 ? '+' : ''}${(bytes / 2 ** 20).toFixed(0)}`)
        .join(', ');
      return {
        baseline: first.total, peak: peak.total, growth: peak.total - first.total, kinds: grown(peaks), where,
      };
    },
  };
}
