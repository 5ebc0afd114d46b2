// The s3-direct benchmark suite. Run it through scripts/bench.sh (which builds and installs what
// it needs); `--quick` is a short smoke run. Writes benches/results/latest.{md,json} and never
// fails on a number: a run exits non-zero only when the harness itself cannot work.
//
// Environment (set by scripts/bench.sh): S3_DIRECT_BENCH_BIN (release s3-direct),
// S3_DIRECT_BENCH_TOOL (release s3-direct-bench), S3_DIRECT_BENCH_WEB (pages + Uppy bundle +
// SIMD package), S3_DIRECT_BENCH_PKG (the WASM package), S3_DIRECT_BENCH_PKG_REV (the git
// revision it was built from). Optional: S3_DIRECT_BENCH_ONLY=upload,signing,checksum,link,wan,memory,engines,ready,stalls,
// S3_DIRECT_BENCH_ENGINES=chromium,firefox,webkit (the browsers of the engines, ready and stalls sections),
// S3_DIRECT_BENCH_READY_ROUNDS=5 (fresh profiles per engine and setup in the ready section),
// S3_DIRECT_BENCH_READY_PAUSE_MS=2500 (between its loads), S3_DIRECT_BENCH_READY_JS_FLAGS (V8
// flags for its Chromium, for experiments such as --no-wasm-native-module-cache),
// S3_DIRECT_BENCH_SIZES=256,1024 (MiB), S3_DIRECT_BENCH_RUNS=3, S3_DIRECT_BENCH_STORES=embedded,garage,
// S3_DIRECT_BENCH_VARIANTS=id,id, S3_DIRECT_BENCH_MEMORY_MIB=4096,
// S3_DIRECT_BENCH_MEMORY_CHECKSUMS=off,crc32c,sha256,md5, S3_DIRECT_BENCH_LINKS=50,100 (MB/s),
// S3_DIRECT_BENCH_WAN=100:40,50:100,12.5:80 (MB/s:ms, links with latency),
// S3_DIRECT_BENCH_LOG=1 (server logs), CHROMIUM_PATH,
// S3_DIRECT_BENCH_BASELINE_BIN (another s3-direct binary to measure in the signing section too),
// S3_DIRECT_BENCH_BASELINE_PKG_REV (set by scripts/bench.sh from S3_DIRECT_BENCH_BASELINE_REV: the
// s3-direct client variants also run with the client built from that revision).
import { execFileSync, execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

import { MiB, freeBytes, randomFile, removeTempDir, tempDir } from './lib/files.mjs';
import { childrenNamed, cpuMeter, cpuSeconds, rss, treePss } from './lib/proc.mjs';
import { allowBrowsers, s3Client, verifyAndDelete } from './lib/s3.mjs';
import {
  benchDir, repoRoot, startCompanion, startEmbeddedStore, startGarage, startSigner,
} from './lib/servers.mjs';
import { renderMarkdown } from './lib/report.mjs';
import { engineSection } from './lib/engines.mjs';
import { readySection } from './lib/ready.mjs';
import { stallSection } from './lib/stalls.mjs';

const exec = promisify(execFile);
const quick = process.argv.includes('--quick');
const env = (name, fallback) => process.env[name] ?? fallback;
const list = (name, fallback) => (process.env[name] ? process.env[name].split(',').map((s) => s.trim()) : fallback);

/** `"100:40"` → a link of 100 MB/s upload with 40 ms of latency per request. */
const wanLink = (spec) => {
  const [mbps, latencyMs] = spec.split(':').map(Number);
  if (!(mbps > 0) || !(latencyMs >= 0)) throw new Error(`S3_DIRECT_BENCH_WAN: "${spec}" is not MB/s:ms`);
  return { mbps, latencyMs };
};

const config = {
  quick,
  sizesMiB: list('S3_DIRECT_BENCH_SIZES', quick ? ['256'] : ['256', '1024']).map(Number),
  runs: Number(env('S3_DIRECT_BENCH_RUNS', quick ? 1 : 3)),
  stores: list('S3_DIRECT_BENCH_STORES', ['embedded', 'garage']),
  sections: list('S3_DIRECT_BENCH_ONLY', ['checksum', 'signing', 'upload', 'link', 'wan', 'memory', 'engines', 'ready', 'stalls']),
  engines: list('S3_DIRECT_BENCH_ENGINES', ['chromium', 'firefox', 'webkit']),
  signingSeconds: quick ? 3 : 10,
  signingRounds: quick ? 1 : 3,
  signingConnections: 50,
  batchParts: 100,
  checksumMiB: quick ? 32 : 64,
  checksumRepeats: quick ? 1 : 3,
  // Upload links slower than loopback, in MB/s (Chromium's own throttling): 400 and 800 Mbit/s.
  linksMBps: list('S3_DIRECT_BENCH_LINKS', quick ? ['50'] : ['50', '100']).map(Number),
  linkFileMiB: 256,
  // Links with latency, where each request's round trip costs what it costs on the Internet:
  // a fast office uplink to a nearby region, a fast one to another continent, and a home uplink
  // to a distant region.
  wanLinks: list('S3_DIRECT_BENCH_WAN', quick ? ['100:40'] : ['100:40', '50:100', '12.5:80']).map(wanLink),
  wanFileMiB: 256,
  memoryFileMiB: Number(env('S3_DIRECT_BENCH_MEMORY_MIB', quick ? 1024 : 4096)),
  // The "small constant" of the memory bound: page, WASM module, worker and buffers in Chromium's
  // own processes beyond the parts being hashed.
  memoryConstantMiB: 64,
  // Time to ready: fresh profiles per engine and setup, each with a cold and two cached loads.
  readyRounds: Number(env('S3_DIRECT_BENCH_READY_ROUNDS', quick ? 2 : 5)),
  readyPauseMs: Number(env('S3_DIRECT_BENCH_READY_PAUSE_MS', 2500)),
  readyJsFlags: env('S3_DIRECT_BENCH_READY_JS_FLAGS', null),
};
const bin = env('S3_DIRECT_BENCH_BIN');
const tool = env('S3_DIRECT_BENCH_TOOL');
const webDir = env('S3_DIRECT_BENCH_WEB');
const pkgDir = env('S3_DIRECT_BENCH_PKG');
for (const [name, v] of Object.entries({ bin, tool, webDir, pkgDir })) {
  if (!v) throw new Error(`${name} not set: run scripts/bench.sh`);
}

const log = (...args) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...args);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = (xs) => (xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length } : null);
const tryRun = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return null;
  }
};
const pkgVersion = (name) => JSON.parse(readFileSync(path.join(benchDir, 'node_modules', name, 'package.json'), 'utf8')).version;

// ------------------------------------------------------------------ machine and versions

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const osRelease = readFileSync('/etc/os-release', 'utf8');
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${/^PRETTY_NAME="?(.*?)"?$/m.exec(osRelease)?.[1] ?? 'Linux'}, kernel ${os.release()}`,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function versions(browser) {
  const rev = tryRun('git', ['-C', repoRoot, 'rev-parse', '--short=12', 'HEAD']);
  const dirty = tryRun('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no']);
  return {
    s3Direct: `${rev}${dirty ? ' (with uncommitted changes)' : ''}`,
    wasmPackage: env('S3_DIRECT_BENCH_PKG_REV', 'unknown'),
    ...(process.env.S3_DIRECT_BENCH_BASELINE_PKG_REV ? { wasmBaselinePackage: process.env.S3_DIRECT_BENCH_BASELINE_PKG_REV } : {}),
    chromium: browser.version(),
    node: process.version,
    playwrightCore: pkgVersion('playwright-core'),
    uppyCore: pkgVersion('@uppy/core'),
    uppyAwsS3: pkgVersion('@uppy/aws-s3'),
    uppy6Core: pkgVersion('uppy6-core'),
    uppy6AwsS3: pkgVersion('uppy6-aws-s3'),
    uppyCompanion: pkgVersion('@uppy/companion'),
    garage: tryRun('garage', ['--version'])?.split('\n')[0] ?? 'not installed',
    rustc: tryRun('rustc', ['--version']),
  };
}

// ------------------------------------------------------------------ stores and their servers

/**
 * A store with an s3-direct signer and a Companion in front of it. Reopened (fresh data) once
 * `writtenBytes` passes `limit`, because Garage frees deleted blocks only later and the disk is
 * shared.
 */
async function openStack(kind) {
  const store = kind === 'garage' ? await startGarage() : await startEmbeddedStore({ bin });
  const client = s3Client({ endpoint: store.endpoint, region: store.region, ...store.credentials });
  if (kind === 'garage') await allowBrowsers(client, store.bucket);
  const [signer, companion] = await Promise.all([
    // Each client variant names its checksum (or none): the server's default (`auto`, one the
    // store verifies) would make the unchecksummed rows hash too.
    startSigner({ bin, store, webDir, pkgDir, extraArgs: ['--checksum', 'off'] }),
    startCompanion({ store, webDir }),
  ]);
  return {
    kind, store, client, signer, companion, writtenBytes: 0,
    async close() {
      await Promise.all([signer.stop(), companion.stop()]);
      await store.stop();
      // Its data now, not at exit: a full run writes tens of GiB, and Garage frees the blocks
      // of deleted objects only later.
      await removeTempDir(store.dataDir);
    },
  };
}

const stacks = new Map();
async function stackFor(kind, bytes) {
  let s = stacks.get(kind);
  if (s && s.writtenBytes + bytes > 6 * 1024 * MiB) {
    await s.close();
    s = null;
  }
  if (!s) {
    s = await openStack(kind);
    stacks.set(kind, s);
  }
  s.writtenBytes += bytes;
  return s;
}

// ------------------------------------------------------------------ browser side

let browser;
let browserPid;

async function openPage(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') errors.push(msg.text());
  });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 }).catch((err) => {
    throw new Error(`${url} did not load: ${errors.join('; ') || err.message}`);
  });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  page.benchErrors = errors;
  page.cdp = cdp;
  return page;
}

/** Samples the page's JS heap, its WASM memory and the browser's PSS every 200 ms. */
function memorySampler(page) {
  const baselinePss = treePss(browserPid);
  const peak = { jsHeapUsed: 0, jsHeapTotal: 0, wasm: 0, browserPss: baselinePss };
  let stopped = false;
  const sample = async () => {
    try {
      const { metrics } = await page.cdp.send('Performance.getMetrics');
      const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
      peak.jsHeapUsed = Math.max(peak.jsHeapUsed, m.JSHeapUsedSize ?? 0);
      peak.jsHeapTotal = Math.max(peak.jsHeapTotal, m.JSHeapTotalSize ?? 0);
      peak.wasm = Math.max(peak.wasm, await page.evaluate(() => window.bench.wasmMemory()));
    } catch {
      // the page is busy closing
    }
    peak.browserPss = Math.max(peak.browserPss, treePss(browserPid));
  };
  const loop = (async () => {
    while (!stopped) {
      await sample();
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await sample();
      return { ...peak, baselinePss, browserPssGrowth: peak.browserPss - baselinePss };
    },
  };
}

const withTimeout = (promise, ms, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no result after ${ms / 1000} s`)), ms).unref()),
]);

// ------------------------------------------------------------------ upload variants

/**
 * The part size s3-direct's client picks when none is configured (`default_part_size` in
 * protocol/src/plan.rs): about 16 parts of 8 to 16 MiB, rounded up to a MiB. The ceilings cut the
 * file the same way, and every default run checks that the client did (`partsTotal`).
 */
const defaultPartFor = (size) => Math.min(16 * MiB, Math.max(8 * MiB, Math.ceil(size / 16 / MiB) * MiB));
// The fastest part size of a sweep on this machine (8 to 64 MiB, BENCHMARKS.md).
const tunedPart = 32 * MiB;
const uppyTunedPart = 16 * MiB;
const variants = [
  { id: 's3d', label: 's3-direct client, default (8–16 MiB parts by file size, 6 at once)', page: 's3direct', signer: 's3direct', params: {}, defaultPlan: true },
  { id: 's3d-32', label: 's3-direct client, tuned (32 MiB parts, 6 at once)', page: 's3direct', signer: 's3direct', params: { partSize: tunedPart } },
  { id: 's3d-md5', label: 's3-direct client, default + MD5 part checksums (Content-MD5)', page: 's3direct', signer: 's3direct', params: { checksum: 'md5' }, maxMiB: 256, defaultPlan: true },
  { id: 's3d-crc32c', label: 's3-direct client, default + CRC32C part checksums', page: 's3direct', signer: 's3direct', params: { checksum: 'crc32c' }, maxMiB: 256, defaultPlan: true },
  { id: 's3d-sha256', label: 's3-direct client, default + SHA-256 part checksums', page: 's3direct', signer: 's3direct', params: { checksum: 'sha256' }, maxMiB: 256, defaultPlan: true },
  { id: 'uppy-companion', label: 'Uppy 5 + Companion, default (5 MiB parts, 6 at once)', page: 'uppy', signer: 'companion', params: {} },
  { id: 'uppy-companion-16', label: 'Uppy 5 + Companion, 16 MiB parts', page: 'uppy', signer: 'companion', params: { chunkSize: uppyTunedPart } },
  { id: 'uppy-companion-32', label: 'Uppy 5 + Companion, 32 MiB parts', page: 'uppy', signer: 'companion', params: { chunkSize: tunedPart } },
  { id: 'uppy-s3d', label: "Uppy 5 against s3-direct's Companion routes, default", page: 'uppy', signer: 's3direct', params: {} },
  // Uppy's current major: it sends a file's parts one after another.
  { id: 'uppy6-companion', label: 'Uppy 6 + Companion, default (5 MiB parts, one at a time)', page: 'uppy6', signer: 'companion', params: {} },
  { id: 'uppy6-companion-16', label: 'Uppy 6 + Companion, 16 MiB parts', page: 'uppy6', signer: 'companion', params: { chunkSize: uppyTunedPart } },
  { id: 'ceiling', label: "browser ceiling (one batch, bare XHR), the default's part size × 6", page: 'ceiling', signer: 's3direct', params: (size) => ({ partSize: defaultPartFor(size), concurrency: 6 }) },
  { id: 'ceiling-32', label: 'browser ceiling (one batch, bare XHR), 32 MiB × 6', page: 'ceiling', signer: 's3direct', params: { partSize: tunedPart, concurrency: 6 } },
  // The least a checksummed upload must do on top of the ceiling: what the checksum target asks
  // of the client, asked of the bare page.
  { id: 'ceiling-crc32c', label: "browser ceiling + CRC32C part checksums (a Web Worker hashes, each part signed with its sum), the default's part size × 6", page: 'ceiling', signer: 's3direct', params: (size) => ({ partSize: defaultPartFor(size), concurrency: 6, checksum: 'crc32c' }), maxMiB: 256 },
  { id: 'store-ceiling', label: "store ceiling (native parallel PUTs), the default's part size × 6", native: true, params: (size) => ({ partSize: defaultPartFor(size), concurrency: 6 }) },
];
// Before/after comparisons: each s3-direct client variant again with the baseline revision's client.
const baselinePkg = process.env.S3_DIRECT_BENCH_BASELINE_PKG_REV;
if (baselinePkg) {
  const ours = variants.filter((v) => v.page === 's3direct');
  const at = variants.indexOf(ours.at(-1)) + 1;
  variants.splice(at, 0, ...ours.map((v) => ({
    ...v, id: `${v.id}-baseline`, label: `${v.label} — baseline client (${baselinePkg})`, query: '?pkg=baseline', baselineOf: v.id,
  })));
}
const chosenVariants = list('S3_DIRECT_BENCH_VARIANTS', null);
if (chosenVariants) variants.splice(0, variants.length, ...variants.filter((v) => chosenVariants.includes(v.id)));

/** A variant's parameters for a file of `size` bytes (some follow the default's part size). */
const paramsFor = (variant, size) => (typeof variant.params === 'function' ? variant.params(size) : { ...variant.params });

async function json(res) {
  if (!res.ok) throw new Error(`${res.url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The store ceiling: create and sign through s3-direct, PUT natively, complete. */
async function nativeUpload(stack, file, { partSize, concurrency }) {
  const api = `${stack.signer.url}/s3/multipart`;
  const started = performance.now();
  const created = await json(await fetch(api, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ filename: file.name, type: 'application/octet-stream', metadata: {}, size: file.size, partSize }),
  }));
  const id = encodeURIComponent(created.uploadId);
  const count = Math.ceil(file.size / partSize);
  const numbers = Array.from({ length: count }, (_, i) => i + 1);
  const signed = await json(await fetch(`${api}/${id}/batch?${new URLSearchParams({ key: created.key, partNumbers: numbers.join(',') })}`));
  const jobFile = path.join(path.dirname(file.path), `${file.name}.job.json`);
  await writeFile(jobFile, JSON.stringify({
    file: file.path,
    concurrency,
    parts: numbers.map((n) => ({
      number: n,
      url: signed.presignedUrls[n],
      offset: (n - 1) * partSize,
      length: Math.min(partSize, file.size - (n - 1) * partSize),
      headers: { ...signed.headers, ...(signed.partHeaders?.[n] ?? {}) },
    })),
  }));
  const { stdout } = await exec(tool, ['put', '--job', jobFile], { maxBuffer: 64 * MiB });
  const out = JSON.parse(stdout);
  await json(await fetch(`${api}/${id}/complete?${new URLSearchParams({ key: created.key })}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ parts: numbers.map((n) => ({ PartNumber: n, ETag: out.etags[n] })) }),
  }));
  return {
    seconds: (performance.now() - started) / 1000, key: created.key, clientCpu: out.cpu_seconds, putSeconds: out.seconds,
  };
}

/** One upload of a fresh random file; resolves to its measurements (never throws). */
async function uploadOnce(stack, variant, sizeMiB, dir, label) {
  const size = sizeMiB * MiB;
  let file;
  try {
    file = await randomFile(dir, `${label}.bin`, size);
  } catch (err) {
    return { ok: false, error: `no file to upload: ${err.message}` };
  }
  const signer = variant.signer === 'companion' ? stack.companion : stack.signer;
  const procs = {
    browser: variant.native ? null : { pid: browserPid, tree: true },
    signer: { pid: signer.pid },
    store: { pid: stack.store.pid },
  };
  let page;
  try {
    let result;
    let memory = null;
    let meter;
    if (variant.native) {
      meter = cpuMeter(procs);
      result = await withTimeout(nativeUpload(stack, file, paramsFor(variant, size)), 600_000, 'native upload');
    } else {
      const base = variant.signer === 'companion' ? `${signer.url}/bench` : signer.url;
      page = await openPage(`${base}/${variant.page}.html${variant.query ?? ''}`);
      if (variant.link) {
        // Chromium's network emulation: every request of the page shares this upload rate, and
        // each waits `latencyMs` more for its answer (one round trip per request, as on a
        // keep-alive connection).
        await page.cdp.send('Network.enable');
        await page.cdp.send('Network.emulateNetworkConditions', {
          offline: false,
          latency: variant.link.latencyMs ?? 0,
          downloadThroughput: -1,
          uploadThroughput: variant.link.mbps * 1e6,
        });
      }
      await page.setInputFiles('#picker', file.path);
      const params = paramsFor(variant, size);
      if (variant.page === 'uppy' || variant.page === 'uppy6') params.endpoint = signer.url;
      const sampler = memorySampler(page);
      meter = cpuMeter(procs);
      try {
        // A run slower than 10 MB/s has hung (they run at 40-150 MB/s here): fail it, rather than
        // hold the whole suite for half an hour on a 4 GiB file.
        result = await withTimeout(
          page.evaluate((p) => window.bench.run(p), params),
          Math.max(120_000, (size / (10 * 1e6)) * 1000),
          variant.id,
        );
      } finally {
        memory = await sampler.stop();
      }
    }
    const cpu = meter.stop();
    if (result.clientCpu != null) cpu.client = result.clientCpu;
    if (variant.defaultPlan && result.partsTotal !== Math.ceil(size / defaultPartFor(size))) {
      throw new Error(`the client cut ${size} bytes into ${result.partsTotal} parts, the bench's copy of its default part size into ${Math.ceil(size / defaultPartFor(size))}: update defaultPartFor`);
    }
    let verified = false;
    let key = result.key;
    if (!key && result.location) key = decodeURIComponent(new URL(result.location).pathname.split('/').slice(2).join('/'));
    if (key) verified = await verifyAndDelete(stack.client, stack.store.bucket, key, file);
    return {
      ok: true, seconds: result.seconds, mbPerSec: size / 1e6 / result.seconds, cpu, memory, verified, firstPutMs: result.firstPutMs,
      ...(result.putSeconds != null ? { putSeconds: result.putSeconds } : {}),
    };
  } catch (err) {
    // The first line says what failed; the signer's last log lines usually say why.
    const serverLog = signer.stderr().trim().split('\n').slice(-3).join(' | ');
    return {
      ok: false,
      error: err.message.split('\n')[0].slice(0, 400),
      serverLog: serverLog.slice(-1500),
    };
  } finally {
    await page?.close().catch(() => {});
    await file.remove();
  }
}

async function uploadSection(results, dir) {
  const stores = config.stores.filter((s) => s !== 'garage' || results.versions.garage !== 'not installed');
  if (stores.length < config.stores.length) results.notes.push('Garage is not installed (tests/stores/garage.sh install): Garage runs skipped.');
  const cells = new Map();
  for (const sizeMiB of config.sizesMiB) {
    for (let run = 1; run <= config.runs; run += 1) {
      for (const kind of stores) {
        for (const variant of variants) {
          // The cost of checksums is a ratio; one size shows it and keeps the run short.
          if (variant.maxMiB && sizeMiB > variant.maxMiB) continue;
          const stack = await stackFor(kind, sizeMiB * MiB);
          const label = `${kind}-${variant.id}-${sizeMiB}-${run}`;
          const r = await uploadOnce(stack, variant, sizeMiB, dir, label);
          log(`upload ${label}: ${r.ok ? `${r.mbPerSec.toFixed(1)} MB/s${r.verified ? '' : ' NOT VERIFIED'}` : `failed: ${r.error}\n  server log: ${r.serverLog}`}`);
          const k = `${kind}|${sizeMiB}|${variant.id}`;
          if (!cells.has(k)) cells.set(k, { store: kind, sizeMiB, variant: variant.id, label: variant.label, runs: [] });
          cells.get(k).runs.push(r);
        }
      }
    }
  }
  for (const cell of cells.values()) results.uploads.push(summarize(cell));
}

/** Adds to `cell` the summaries of its `runs` (each a result of `uploadOnce`). */
function summarize(cell) {
  const ok = cell.runs.filter((r) => r.ok);
  const pick = (f) => summary(ok.map(f).filter((x) => x != null));
  cell.mbPerSec = pick((r) => r.mbPerSec);
  cell.cpuSeconds = {
    browser: pick((r) => r.cpu.browser),
    signer: pick((r) => r.cpu.signer),
    store: pick((r) => r.cpu.store),
    client: pick((r) => r.cpu.client),
  };
  cell.peak = {
    jsHeapUsed: pick((r) => r.memory?.jsHeapUsed),
    wasm: pick((r) => r.memory?.wasm),
    browserPssGrowth: pick((r) => r.memory?.browserPssGrowth),
  };
  cell.firstPutMs = pick((r) => r.firstPutMs);
  cell.verified = `${ok.filter((r) => r.verified).length}/${cell.runs.length}`;
  cell.failures = cell.runs.filter((r) => !r.ok).map((r) => r.error);
  return cell;
}

// ------------------------------------------------------------------ checksum cost on slower links

/**
 * What part checksums cost when the link, not the machine, sets the pace: the default client with
 * each algorithm, and without, on an upload rate throttled by Chromium, embedded store, 256 MiB.
 * On loopback the browser, the store and the network stack share two cores, so the hashing takes
 * CPU the uploads need; here the hashing has time to stay ahead of the PUTs.
 */
async function linkSection(results, dir) {
  const sizeMiB = config.linkFileMiB;
  const cells = new Map();
  for (const mbps of config.linksMBps) {
    for (let run = 1; run <= config.runs; run += 1) {
      for (const checksum of ['off', 'crc32c', 'md5', 'sha256']) {
        const stack = await stackFor('embedded', sizeMiB * MiB);
        const variant = {
          id: `link-${checksum}`, page: 's3direct', signer: 's3direct', params: { checksum }, defaultPlan: true, link: { mbps },
        };
        const label = `link${mbps}-${checksum}-${run}`;
        const r = await uploadOnce(stack, variant, sizeMiB, dir, label);
        log(`link ${label}: ${r.ok ? `${r.mbPerSec.toFixed(1)} MB/s${r.verified ? '' : ' NOT VERIFIED'}` : `failed: ${r.error}`}`);
        const k = `${mbps}|${checksum}`;
        if (!cells.has(k)) cells.set(k, { linkMBps: mbps, sizeMiB, checksum, runs: [] });
        cells.get(k).runs.push(r);
      }
    }
  }
  for (const cell of cells.values()) results.link.push(summarize(cell));
}

// ------------------------------------------------------------------ links with latency

/** The clients compared on links with latency: each with its default settings (s3-direct's also with
 * CRC32C part checksums), and the ceiling. */
const wanVariantIds = ['s3d', 's3d-crc32c', 'uppy-companion', 'uppy6-companion', 'ceiling'];

/**
 * Uploads over links with latency: on loopback a request's round trip costs almost nothing, so
 * the loopback tables cannot show what a client's requests per part cost. Here Chromium holds
 * each answer back by the link's latency and every request shares its upload rate; s3-direct's
 * client, Uppy 5 and Uppy 6 with Companion (default settings) and the bare-XHR ceiling, embedded
 * store, interleaved round by round.
 */
async function wanSection(results, dir) {
  const sizeMiB = config.wanFileMiB;
  const chosen = variants.filter((v) => wanVariantIds.includes(v.id));
  const cells = new Map();
  for (const link of config.wanLinks) {
    for (let run = 1; run <= config.runs; run += 1) {
      for (const base of chosen) {
        const stack = await stackFor('embedded', sizeMiB * MiB);
        const variant = { ...base, link };
        const label = `wan${link.mbps}-${link.latencyMs}ms-${base.id}-${run}`;
        const r = await uploadOnce(stack, variant, sizeMiB, dir, label);
        log(`wan ${label}: ${r.ok ? `${r.mbPerSec.toFixed(1)} MB/s${r.verified ? '' : ' NOT VERIFIED'}` : `failed: ${r.error}`}`);
        const k = `${link.mbps}|${link.latencyMs}|${base.id}`;
        if (!cells.has(k)) {
          cells.set(k, {
            linkMBps: link.mbps, latencyMs: link.latencyMs, sizeMiB, variant: base.id, label: base.label, runs: [],
          });
        }
        cells.get(k).runs.push(r);
      }
    }
  }
  for (const cell of cells.values()) results.wan.push(summarize(cell));
}

// ------------------------------------------------------------------ signing

async function load(url, seconds) {
  const { stdout } = await exec(tool, [
    'load', '--url', url, '--connections', String(config.signingConnections),
    '--seconds', String(seconds), '--warmup', '1', '--threads', '1',
  ], { maxBuffer: 16 * MiB });
  return JSON.parse(stdout);
}

/** One measured load of `url` on the signing server `proc`, once every server is idle. */
async function signingLoad(proc, url, settle) {
  const settledMs = await settle();
  const rssBefore = rss(proc.pid);
  const meter = cpuMeter({ server: { pid: proc.pid } });
  let peakRss = rssBefore.rss;
  const poll = setInterval(() => { peakRss = Math.max(peakRss, rss(proc.pid).rss); }, 100);
  let out;
  try {
    out = await load(url, config.signingSeconds);
  } catch (err) {
    out = { error: err.message };
  } finally {
    clearInterval(poll);
  }
  const cpu = meter.stop();
  return {
    requestsPerSec: out.requests_per_sec ?? null,
    latencyMs: out.latency_ms ?? null,
    non2xx: out.non_2xx ?? null,
    errors: out.errors ?? null,
    serverCpuSeconds: cpu.server,
    loadGeneratorCpuSeconds: out.cpu_seconds ?? null,
    rssBytes: { before: rssBefore.rss, peakDuringLoad: Math.max(peakRss, rss(proc.pid).rss), highWaterMark: rss(proc.pid).peak },
    sample: out.sample_response?.slice(0, 160) ?? out.error,
    waitedForIdleMs: settledMs,
  };
}

async function signingSection(results) {
  const stack = await stackFor('embedded', 0);
  const parts = config.batchParts;
  const numbers = Array.from({ length: parts }, (_, i) => i + 1).join(',');
  const servers = {
    's3-direct': { proc: stack.signer, body: { size: parts * 8 * MiB, partSize: 8 * MiB } },
    Companion: { proc: stack.companion, body: {} },
  };
  // Before/after comparisons: another s3-direct build measured in the same run.
  const baselineBin = process.env.S3_DIRECT_BENCH_BASELINE_BIN;
  let baseline;
  if (baselineBin) {
    baseline = await startSigner({ bin: baselineBin, store: stack.store, webDir, pkgDir });
    servers['s3-direct (baseline build)'] = { proc: baseline, body: servers['s3-direct'].body };
  }
  const targets = {};
  for (const [name, s] of Object.entries(servers)) {
    const created = await json(await fetch(`${s.proc.url}/s3/multipart`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filename: 'sign-bench.bin', type: 'application/octet-stream', metadata: {}, ...s.body }),
    }));
    const id = encodeURIComponent(created.uploadId);
    const key = encodeURIComponent(created.key);
    targets[name] = {
      single: `${s.proc.url}/s3/multipart/${id}/1?key=${key}`,
      batch: `${s.proc.url}/s3/multipart/${id}/batch?key=${key}&partNumbers=${numbers}`,
    };
  }
  // A server may still be working off the previous load's queue (Companion keeps a core busy for
  // seconds after its load ends): each load starts once every server is idle, so none is measured
  // beside another's backlog.
  const settle = async () => {
    const started = Date.now();
    for (;;) {
      const pids = Object.values(servers).map((x) => x.proc.pid);
      const before = pids.map((pid) => cpuSeconds(pid));
      await new Promise((r) => setTimeout(r, 500));
      const busy = pids.map((pid, i) => cpuSeconds(pid) - before[i]);
      if (busy.every((sec) => sec < 0.05) || Date.now() - started > 30_000) return Date.now() - started;
    }
  };
  // Each server is loaded once per round, the order rotated from round to round, so that no
  // server always follows the same load and one slow round does not decide a row. (Numbers that
  // seemed to follow the order came from a lock in the server; see BENCHMARKS.md.)
  const names = Object.keys(servers);
  for (const kind of ['single', 'batch']) {
    const runs = Object.fromEntries(names.map((name) => [name, []]));
    for (let round = 0; round < config.signingRounds; round++) {
      const order = names.map((_, i) => names[(i + round) % names.length]);
      for (const name of order) {
        const run = await signingLoad(servers[name].proc, targets[name][kind], settle);
        log(`signing ${name} ${kind}, round ${round + 1}: ${run.requestsPerSec?.toFixed(0)} req/s, p99 ${run.latencyMs?.p99} ms, ${run.non2xx} non-2xx`);
        runs[name].push({ ...run, round: round + 1, place: order.indexOf(name) + 1 });
      }
    }
    const perRequest = kind === 'batch' ? parts : 1;
    for (const name of names) {
      const rs = runs[name];
      // The round with the median request rate stands for the server; the others are kept.
      const ok = rs.filter((x) => x.requestsPerSec != null).sort((a, b) => a.requestsPerSec - b.requestsPerSec);
      const mid = ok[Math.floor((ok.length - 1) / 2)] ?? rs[0];
      const row = {
        server: name,
        kind,
        partsPerRequest: perRequest,
        connections: config.signingConnections,
        seconds: config.signingSeconds,
        ...mid,
        partsPerSec: mid.requestsPerSec != null ? mid.requestsPerSec * perRequest : null,
        rounds: rs,
        requestsPerSecSummary: summary(ok.map((x) => x.requestsPerSec)),
        p99Summary: summary(ok.map((x) => x.latencyMs?.p99).filter((x) => x != null)),
        // RSS: the highest of every round.
        rssBytes: {
          before: Math.min(...rs.map((x) => x.rssBytes.before)),
          peakDuringLoad: Math.max(...rs.map((x) => x.rssBytes.peakDuringLoad)),
          highWaterMark: Math.max(...rs.map((x) => x.rssBytes.highWaterMark)),
        },
      };
      delete row.round;
      delete row.place;
      log(`signing ${name} ${kind}: ${row.requestsPerSec?.toFixed(0)} req/s, p99 ${row.latencyMs?.p99} ms (median round of ${rs.length})`);
      results.signing.push(row);
    }
  }
  await baseline?.stop();
}

// ------------------------------------------------------------------ checksum throughput

async function checksumSection(results) {
  const stack = await stackFor('embedded', 0);
  const page = await openPage(`${stack.signer.url}/checksum.html`);
  try {
    const rows = await withTimeout(page.evaluate((p) => window.bench.run(p), {
      sizeMiB: config.checksumMiB, repeats: config.checksumRepeats,
    }), 600_000, 'checksum');
    for (const r of rows) {
      log(`checksum ${r.implementation} ${r.algorithm}: ${r.mbPerSec.toFixed(0)} MB/s`);
      results.checksum.push({ ...r, bufferMiB: config.checksumMiB });
    }
  } finally {
    await page.close();
  }
}

// ------------------------------------------------------------------ memory bound

async function memorySection(results, dir) {
  // The upload section's stores are done with: give their disk back first.
  for (const [kind, s] of stacks) {
    await s.close();
    stacks.delete(kind);
  }
  const sizeMiB = config.memoryFileMiB;
  const need = 3 * sizeMiB * MiB + 2 * 1024 * MiB;
  if (freeBytes(dir) < need) {
    results.notes.push(`memory bound skipped: ${(freeBytes(dir) / 2 ** 30).toFixed(1)} GiB free, ${(need / 2 ** 30).toFixed(1)} GiB needed`);
    return;
  }
  const concurrency = 6;
  // Every algorithm: each hashes at its own pace, which changes how many parts wait for their
  // sums and their URLs.
  for (const checksum of list('S3_DIRECT_BENCH_MEMORY_CHECKSUMS', ['off', 'crc32c', 'sha256', 'md5'])) {
    const stack = await stackFor('embedded', sizeMiB * MiB);
    // The default client, as users run it: its part size for this file sets the bound.
    const variant = { id: `memory-${checksum}`, page: 's3direct', signer: 's3direct', params: { checksum }, defaultPlan: true };
    const r = await uploadOnce(stack, variant, sizeMiB, dir, `memory-${checksum}`);
    const partSize = defaultPartFor(sizeMiB * MiB);
    const boundBytes = concurrency * partSize + config.memoryConstantMiB * MiB;
    const row = {
      fileMiB: sizeMiB,
      checksum,
      partSize,
      concurrency,
      boundBytes,
      ok: r.ok,
      error: r.error,
      mbPerSec: r.mbPerSec,
      verified: r.verified,
      peak: r.memory,
      withinBound: r.ok ? r.memory.browserPssGrowth <= boundBytes : null,
    };
    log(`memory ${checksum}: peak browser growth ${r.ok ? (r.memory.browserPssGrowth / MiB).toFixed(0) : '?'} MiB (bound ${boundBytes / MiB} MiB)`);
    results.memory.push(row);
  }
}

// ------------------------------------------------------------------ targets

function targets(results) {
  const out = [];
  const cell = (store, sizeMiB, id) => results.uploads.find((c) => c.store === store && c.sizeMiB === sizeMiB && c.variant === id);
  // The ratio of the medians, and the spread of the ratio round by round: round i of every
  // variant ran minutes apart on the same machine, so a target missed by less than that spread
  // is not told apart from noise by this run.
  const ratio = (name, ca, cb, want, store, sizeMiB) => {
    const [a, b] = [ca?.mbPerSec?.median, cb?.mbPerSec?.median];
    if (a == null || b == null) return;
    const rounds = ca.runs
      .map((r, i) => (r.ok && cb.runs[i]?.ok ? r.mbPerSec / cb.runs[i].mbPerSec : null))
      .filter((x) => x != null);
    out.push({
      name: `${name} (${store}, ${sizeMiB} MiB)`,
      value: a / b,
      target: want,
      met: want == null ? null : a / b >= want,
      rounds: rounds.length > 1 ? [Math.min(...rounds), Math.max(...rounds)] : undefined,
    });
  };
  const combos = [...new Set(results.uploads.map((c) => `${c.store}|${c.sizeMiB}`))].map((k) => k.split('|'));
  for (const [store, s] of combos) {
    const sizeMiB = Number(s);
    ratio("s3-direct default / browser ceiling at the default's part size", cell(store, sizeMiB, 's3d'), cell(store, sizeMiB, 'ceiling'), 0.97, store, sizeMiB);
    ratio('s3-direct tuned / browser ceiling 32 MiB', cell(store, sizeMiB, 's3d-32'), cell(store, sizeMiB, 'ceiling-32'), 0.97, store, sizeMiB);
    ratio('s3-direct default / Uppy+Companion default', cell(store, sizeMiB, 's3d'), cell(store, sizeMiB, 'uppy-companion'), 1.3, store, sizeMiB);
    ratio('s3-direct tuned / Uppy+Companion 16 MiB', cell(store, sizeMiB, 's3d-32'), cell(store, sizeMiB, 'uppy-companion-16'), 1.1, store, sizeMiB);
    // Not a target: the same part size on both sides.
    ratio('s3-direct tuned / Uppy+Companion 32 MiB (same part size)', cell(store, sizeMiB, 's3d-32'), cell(store, sizeMiB, 'uppy-companion-32'), null, store, sizeMiB);
    // Not targets (the issue names Uppy 5): Uppy's current major.
    ratio('s3-direct default / Uppy 6+Companion default', cell(store, sizeMiB, 's3d'), cell(store, sizeMiB, 'uppy6-companion'), null, store, sizeMiB);
    ratio('s3-direct tuned / Uppy 6+Companion 16 MiB', cell(store, sizeMiB, 's3d-32'), cell(store, sizeMiB, 'uppy6-companion-16'), null, store, sizeMiB);
    // Not targets on loopback any more (issue 26's decision): no page that hashes what it sends
    // keeps 90 % of an unhashed upload on these 2 cores; the target is the checksummed ceiling.
    ratio('MD5-checksummed / unchecksummed', cell(store, sizeMiB, 's3d-md5'), cell(store, sizeMiB, 's3d'), null, store, sizeMiB);
    ratio('CRC32C-checksummed / unchecksummed', cell(store, sizeMiB, 's3d-crc32c'), cell(store, sizeMiB, 's3d'), null, store, sizeMiB);
    ratio('SHA-256-checksummed / unchecksummed', cell(store, sizeMiB, 's3d-sha256'), cell(store, sizeMiB, 's3d'), null, store, sizeMiB);
    // Not targets: this build's client against the baseline revision's, variant by variant.
    for (const v of variants.filter((x) => x.baselineOf)) {
      ratio(`${v.baselineOf}: this client / baseline client (${baselinePkg})`, cell(store, sizeMiB, v.baselineOf), cell(store, sizeMiB, v.id), null, store, sizeMiB);
    }
    // The checksum target: the client with CRC32C (what `--checksum auto` picks on the embedded
    // store and Garage) against the bare page doing the least a checksummed upload must do.
    ratio('browser ceiling with CRC32C / browser ceiling (the same ratio for the bare page)', cell(store, sizeMiB, 'ceiling-crc32c'), cell(store, sizeMiB, 'ceiling'), null, store, sizeMiB);
    ratio('s3-direct CRC32C / browser ceiling with CRC32C', cell(store, sizeMiB, 's3d-crc32c'), cell(store, sizeMiB, 'ceiling-crc32c'), 0.97, store, sizeMiB);
  }
  // Not targets: the same ratios on throttled links, where the link and not the two cores sets
  // the pace.
  const names = { crc32c: 'CRC32C', md5: 'MD5', sha256: 'SHA-256' };
  for (const c of results.link.filter((l) => l.checksum !== 'off')) {
    const off = results.link.find((o) => o.linkMBps === c.linkMBps && o.checksum === 'off');
    ratio(`${names[c.checksum]}-checksummed / unchecksummed at a ${c.linkMBps} MB/s link`, c, off, null, 'embedded', c.sizeMiB);
  }
  // Not targets: the same comparisons on links with latency.
  for (const link of config.wanLinks) {
    const wan = (id) => results.wan.find((c) => c.linkMBps === link.mbps && c.latencyMs === link.latencyMs && c.variant === id);
    const at = `at ${link.mbps} MB/s with ${link.latencyMs} ms latency`;
    ratio(`s3-direct default / browser ceiling ${at}`, wan('s3d'), wan('ceiling'), null, 'embedded', config.wanFileMiB);
    // The checksum target on links with latency: the CRC32C-checksummed upload against the same
    // client unchecksummed.
    ratio(`CRC32C-checksummed / unchecksummed ${at}`, wan('s3d-crc32c'), wan('s3d'), 0.95, 'embedded', config.wanFileMiB);
    ratio(`s3-direct default / Uppy+Companion default ${at}`, wan('s3d'), wan('uppy-companion'), null, 'embedded', config.wanFileMiB);
    ratio(`s3-direct default / Uppy 6+Companion default ${at}`, wan('s3d'), wan('uppy6-companion'), null, 'embedded', config.wanFileMiB);
  }
  const sig = (server, kind) => results.signing.find((r) => r.server === server && r.kind === kind);
  const [ss, cs, sb, cb] = [sig('s3-direct', 'single'), sig('Companion', 'single'), sig('s3-direct', 'batch'), sig('Companion', 'batch')];
  if (ss?.requestsPerSec && cs?.requestsPerSec) out.push({ name: 'signing: single-part requests/s vs Companion', value: ss.requestsPerSec / cs.requestsPerSec, target: 30, met: ss.requestsPerSec / cs.requestsPerSec >= 30 });
  if (sb?.partsPerSec && cb?.partsPerSec) out.push({ name: 'signing: parts/s in 100-part batches vs Companion', value: sb.partsPerSec / cb.partsPerSec, target: 20, met: sb.partsPerSec / cb.partsPerSec >= 20 });
  // The median of the rounds' p99s (each round's own p99 is in the signing table).
  const p99 = sb?.p99Summary?.median ?? sb?.latencyMs?.p99;
  if (p99 != null) out.push({ name: 'signing: 100-part batch p99 at 50 connections (ms)', value: p99, target: '< 20', met: p99 < 20 });
  const rssMax = Math.max(...results.signing.filter((r) => r.server === 's3-direct').map((r) => r.rssBytes.peakDuringLoad));
  if (Number.isFinite(rssMax)) out.push({ name: 's3-direct RSS under signing load (MiB)', value: rssMax / MiB, target: '< 30', met: rssMax < 30 * MiB });
  for (const m of results.memory) {
    if (m.ok) out.push({ name: `peak browser memory growth, ${m.fileMiB / 1024} GiB upload, checksum ${m.checksum} (MiB)`, value: m.peak.browserPssGrowth / MiB, target: `≤ ${m.boundBytes / MiB}`, met: m.withinBound });
  }
  return out;
}

// ------------------------------------------------------------------ main

async function main() {
  const started = new Date();
  const dir = await tempDir('s3-direct-bench-files-');
  browser = await chromium.launch({
    executablePath: env('CHROMIUM_PATH', '/usr/bin/chromium'),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // playwright-core starts Chromium as a child of this process.
  [browserPid] = childrenNamed(process.pid, 'chrom');
  if (!browserPid) throw new Error('cannot find the Chromium process');
  const results = {
    date: started.toISOString(),
    quick,
    command: `scripts/bench.sh${quick ? ' --quick' : ''}`,
    machine: machine(),
    versions: versions(browser),
    config,
    notes: [],
    uploads: [],
    signing: [],
    checksum: [],
    link: [],
    wan: [],
    memory: [],
    engines: [],
    ready: [],
    stalls: [],
  };
  log(`machine: ${results.machine.cpu}, ${results.machine.cores} cores, load ${results.machine.loadAverageAtStart.join(' ')}`);
  try {
    const sections = {
      checksum: checksumSection, signing: signingSection, upload: uploadSection, link: linkSection, wan: wanSection, memory: memorySection,
      engines: (r, d) => engineSection(r, d, {
        config, log, stackFor, randomFile, MiB, defaultPartFor, verifyAndDelete, summary,
      }),
      ready: (r) => readySection(r, { config, log, stackFor, summary, bin, pkgDir }),
      stalls: (r, d) => stallSection(r, d, {
        config, log, randomFile, MiB, verifyAndDelete, bin, pkgDir,
      }),
    };
    for (const name of config.sections) {
      log(`== ${name}`);
      try {
        await sections[name](results, dir);
      } catch (err) {
        results.notes.push(`${name} section failed: ${err.message}`);
        log(`${name} section failed:`, err);
      }
    }
  } finally {
    await browser.close().catch(() => {});
    for (const s of stacks.values()) await s.close().catch(() => {});
  }
  results.finished = new Date().toISOString();
  results.machine.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  results.targets = targets(results);
  const outDir = path.join(benchDir, 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(outDir, 'latest.md'), renderMarkdown(results));
  log(`wrote ${path.relative(repoRoot, outDir)}/latest.md and latest.json`);
  // A full run also refreshes the table in BENCHMARKS.md (between its results markers).
  if (!quick && !process.env.S3_DIRECT_BENCH_ONLY && !process.env.S3_DIRECT_BENCH_VARIANTS) {
    const doc = path.join(repoRoot, 'BENCHMARKS.md');
    const text = readFileSync(doc, 'utf8');
    const start = '<!-- results:start -->';
    const end = '<!-- results:end -->';
    const [a, b] = [text.indexOf(start), text.indexOf(end)];
    if (a >= 0 && b > a) {
      const table = renderMarkdown(results).replace(/^# .*\n/, '')
        .replace(/^### /gm, '#### ').replace(/^## /gm, '### ');
      writeFileSync(doc, `${text.slice(0, a + start.length)}\n${table}${text.slice(b)}`);
      log('updated the results in BENCHMARKS.md');
    }
  }
}

await main();
process.exit(0);
