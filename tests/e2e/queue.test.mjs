// The package's UploadQueue in headless Chromium against the embedded store: 200 files of 10 KB to
// 2 MB through one queue, every object read back through S3 and compared by SHA-256, with one
// limit of PUTs in flight across all files and small files sent as one presigned PUT; items
// paused, resumed, cancelled and retried; streams as items (made in the page by tests/lib/streams.mjs).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { launchBrowser } from '../lib/browser.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';
import { installStreams } from '../lib/streams.mjs';

const bucket = 's3-direct';
const FILES = 200;
const CONCURRENCY = 6;
// Files up to 1 MiB go as one PUT, the larger ones (up to 2 MB) as one-part multipart uploads:
// both paths run in the same queue.
const SINGLE_PUT_THRESHOLD = 1024 * 1024;

// Counts XHR PUTs in flight in the page (web/queue.html, the queue's demo page): `loadend` fires
// in the same task as `load`, before the client can start its next PUT, so the count is exact.
function countPuts() {
  window.putsInFlight = 0;
  window.maxPutsInFlight = 0;
  window.putsSent = 0;
  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, ...rest) {
    this.isPut = method === 'PUT';
    return open.call(this, method, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...args) {
    if (this.isPut) {
      window.putsInFlight += 1;
      window.putsSent += 1;
      window.maxPutsInFlight = Math.max(window.maxPutsInFlight, window.putsInFlight);
      this.addEventListener('loadend', () => { window.putsInFlight -= 1; }, { once: true });
    }
    return send.apply(this, args);
  };
}

/** Opens web/queue.html, which loads the package and exposes it as `window.s3direct`. */
async function openQueuePage(browser, server, errors) {
  const page = await browser.newPage();
  page.on('pageerror', (err) => errors.push(err));
  await page.addInitScript(countPuts);
  await page.goto(`${server.url}/queue.html`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  return page;
}

describe('UploadQueue', () => {
  let browser;
  let server;
  let s3;

  before(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('uploads 200 files of 10 KB to 2 MB with one limit of PUTs, every object correct', async () => {
    const errors = [];
    const page = await openQueuePage(browser, server, errors);
    const calls = [];
    // Answered signing calls (a 429 from the server's rate limit would be waited out and asked
    // again, so only answered ones count).
    page.on('response', (r) => {
      const url = new URL(r.url());
      if (!url.pathname.startsWith('/s3/') || !r.ok()) return;
      // A small file's URL signs its checksum; one asked for before the server named its
      // checksum (the default server asks for one) comes without, and is asked for again.
      const signed = url.pathname === '/s3/params' && url.searchParams.has('checksum') ? ' (checksum)' : '';
      calls.push(`${r.request().method()} ${url.pathname}${signed}`);
    });
    const out = await page.evaluate(async ({ files, concurrency, singlePutThreshold }) => {
      const { UploadQueue } = window.s3direct;
      // Deterministic sizes and bytes (xorshift32), so a failure can be replayed.
      let seed = 0x5eed1234;
      const next = () => {
        seed ^= seed << 13; seed >>>= 0;
        seed ^= seed >>> 17;
        seed ^= seed << 5; seed >>>= 0;
        return seed;
      };
      const queue = new UploadQueue({ concurrency, singlePutThreshold, resume: false });
      const progress = [];
      const states = {};
      queue.on('progress', (p) => progress.push(p));
      queue.on('item-state', ({ item, state }) => { (states[item.id] ??= []).push(state); });
      const completed = [];
      queue.on('item-complete', ({ item, result }) => completed.push({ id: item.id, key: result.key }));
      let idleEvents = 0;
      queue.on('idle', () => { idleEvents += 1; });
      const added = [];
      for (let i = 0; i < files; i++) {
        const size = 10_000 + (next() % (2_000_000 - 10_000 + 1));
        const bytes = new Uint8Array(size);
        const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
        for (let w = 0; w < words.length; w++) words[w] = next();
        for (let b = words.length * 4; b < size; b++) bytes[b] = next() & 0xff;
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
        const sha256 = [...digest].map((x) => x.toString(16).padStart(2, '0')).join('');
        const name = `file-${String(i).padStart(3, '0')}.bin`;
        const item = queue.add(new Blob([bytes], { type: 'application/octet-stream' }), {
          filename: name,
          metadata: { index: String(i) },
        });
        added.push({ item, name, size, sha256 });
      }
      const results = await Promise.all(added.map((a) => a.item.promise));
      await queue.idle();
      return {
        files: added.map((a, i) => ({
          name: a.name, size: a.size, sha256: a.sha256, id: a.item.id, state: a.item.state,
          key: results[i].key, resultSize: results[i].size,
        })),
        sameObjects: added.every((a) => queue.items[a.item.id - 1] === a.item),
        progress: progress.map((p) => ({ fraction: p.fraction, sent: p.bytesSent, total: p.bytesTotal, done: p.files.done })),
        final: queue.progress,
        states,
        completed,
        idleEvents,
        maxPutsInFlight: window.maxPutsInFlight,
        putsInFlight: window.putsInFlight,
        putsSent: window.putsSent,
      };
    }, { files: FILES, concurrency: CONCURRENCY, singlePutThreshold: SINGLE_PUT_THRESHOLD });
    assert.deepEqual(errors, []);

    // Every object, read back through S3, with its metadata (signed into single PUTs too).
    const total = out.files.reduce((n, f) => n + f.size, 0);
    for (const [i, f] of out.files.entries()) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: f.key }));
      assert.equal(head.Metadata?.index, String(i), `${f.name}: ${JSON.stringify(head.Metadata)}`);
      assert.equal(f.state, 'done', f.name);
      assert.equal(f.resultSize, f.size, f.name);
      assert.ok(f.key.endsWith(`/${f.name}`), `${f.name} is stored under its name: ${f.key}`);
      const stored = await objectSha256(s3, bucket, f.key);
      assert.deepEqual(stored, { sha256: f.sha256, size: f.size }, f.name);
    }
    assert.equal(new Set(out.files.map((f) => f.key)).size, FILES, 'every file has its own key');
    assert.ok(out.sameObjects, 'queue.items holds the objects add returned');
    assert.equal(out.completed.length, FILES);

    // One limit across all files, reached, never exceeded.
    assert.equal(out.maxPutsInFlight, CONCURRENCY, `at most ${CONCURRENCY} PUTs in flight`);
    assert.equal(out.putsInFlight, 0);

    // Small files as one PUT: no multipart upload for them, one for each larger file.
    const small = out.files.filter((f) => f.size <= SINGLE_PUT_THRESHOLD).length;
    const large = FILES - small;
    assert.ok(small > 50 && large > 50, `both paths are exercised (${small} small, ${large} large)`);
    const count = (call) => calls.filter((c) => c === call).length;
    // (Files that started before the server's first answer named its checksum asked once without
    // it, too: how many depends on timing.)
    assert.equal(count('GET /s3/params (checksum)'), small, 'one signed single-PUT URL per small file');
    assert.equal(count('POST /s3/params/complete'), small, 'each small file reported done once');
    assert.equal(count('POST /s3/multipart'), large, 'a multipart upload only for the larger files');
    assert.equal(out.putsSent, FILES, 'one PUT per file (the larger ones have one part each)');

    // The queue's progress: never backwards, 1 exactly once, at the end.
    const ones = out.progress.filter((p) => p.fraction === 1);
    assert.equal(ones.length, 1, 'the total reaches 1 exactly once');
    assert.equal(out.progress.at(-1).fraction, 1, 'and that is the last report');
    assert.deepEqual(
      { sent: out.progress.at(-1).sent, total: out.progress.at(-1).total, done: out.progress.at(-1).done },
      { sent: total, total, done: FILES },
    );
    for (let i = 1; i < out.progress.length; i++) {
      assert.ok(out.progress[i].fraction <= 1, 'fraction stays within 0..1');
      if (out.progress[i].total === out.progress[i - 1].total) {
        assert.ok(out.progress[i].sent >= out.progress[i - 1].sent, `progress went back at report ${i}`);
      }
    }
    assert.equal(out.final.fraction, 1);
    assert.deepEqual(out.final.files, {
      total: FILES, queued: 0, active: 0, paused: 0, done: FILES, failed: 0, cancelled: 0,
    });
    assert.ok(out.idleEvents >= 1, 'the queue said it was idle');
    for (const f of out.files) {
      const seen = out.states[f.id];
      assert.equal(seen[0], 'queued', `${f.name}: ${seen}`);
      assert.equal(seen.at(-1), 'done', `${f.name}: ${seen}`);
    }
    await page.close();
  });

  it('pauses, resumes, cancels and retries items through the package API', async () => {
    const errors = [];
    const page = await openQueuePage(browser, server, errors);
    // Hold the PUTs of the file called held.bin (multipart, one part) until the test lets them go.
    const held = [];
    await page.route((url) => url.pathname.endsWith('/held.bin') && url.searchParams.has('partNumber'),
      (route) => { held.push(route); });
    // Refuse the signing call for broken.bin once, so it fails and is retried.
    let refused = false;
    await page.route((url) => url.pathname === '/s3/params' && url.searchParams.get('filename') === 'broken.bin',
      (route) => {
        if (refused) return route.continue();
        refused = true;
        return route.fulfill({
          status: 400,
          contentType: 'application/json',
          body: JSON.stringify({ error: 'invalid_request', message: 'refused by the test' }),
        });
      });
    await page.evaluate(() => {
      const { UploadQueue } = window.s3direct;
      const queue = new UploadQueue({ concurrency: 2, singlePutThreshold: 64 * 1024, resume: false });
      window.queue = queue;
      window.errors = [];
      queue.on('item-error', ({ item, error }) => window.errors.push({ name: item.name, code: error.code }));
      const blob = (n) => new Blob([new Uint8Array(n).fill(7)]);
      window.held = queue.add(blob(200_000), { filename: 'held.bin' });
      window.broken = queue.add(blob(1000), { filename: 'broken.bin', contentType: 'text/plain' });
      window.waiting = queue.add(blob(1000), { filename: 'waiting.bin' });
    });
    const state = (name) => page.evaluate((n) => window[n].state, name);
    await page.waitForFunction(() => window.broken.state === 'error');
    assert.deepEqual(await page.evaluate(() => window.errors), [{ name: 'broken.bin', code: 'invalid_request' }]);
    await assert.rejects(page.evaluate(() => window.broken.promise), /refused by the test/);
    // held.bin holds one of the two turns; waiting.bin took broken.bin's and finished.
    await page.waitForFunction(() => window.waiting.state === 'done');
    await page.waitForFunction(() => window.held.state === 'uploading');

    await page.evaluate(() => window.broken.retry());
    await page.waitForFunction(() => window.broken.state === 'done');
    assert.match(await page.evaluate(async () => (await window.broken.promise).key), /\/broken\.bin$/);

    await page.evaluate(() => window.held.pause());
    assert.equal(await state('held'), 'paused');
    assert.equal(await page.evaluate(() => window.queue.progress.files.paused), 1);
    assert.equal(await page.evaluate(async () => { await window.queue.idle(); return 'idle'; }), 'idle',
      'a paused item does not keep the queue busy');
    await page.evaluate(() => window.held.resume());
    await page.waitForFunction(() => window.held.state === 'uploading');
    await page.evaluate(() => window.held.cancel());
    await page.waitForFunction(() => window.held.state === 'cancelled');
    const cancelled = await page.evaluate(() => window.held.promise.then(() => null, (e) => ({ name: e.name, code: e.code })));
    assert.deepEqual(cancelled, { name: 'S3DirectError', code: 'aborted' });
    const final = await page.evaluate(() => window.queue.progress);
    assert.equal(final.fraction, 1, 'a cancelled item does not count');
    assert.deepEqual(final.files, { total: 3, queued: 0, active: 0, paused: 0, done: 2, failed: 0, cancelled: 1 });
    for (const route of held) await route.abort().catch(() => {});
    assert.deepEqual(errors, []);
    await page.close();
  });
  it('takes streams: size unknown until each ends, stored byte-exact; one cancelled before its turn is cancelled', async () => {
    const errors = [];
    const page = await openQueuePage(browser, server, errors);
    await page.evaluate(installStreams);
    const out = await page.evaluate(async () => {
      const { UploadQueue } = window.s3direct;
      // One item at a time: the second stream waits its turn and is cancelled while it waits.
      const queue = new UploadQueue({ concurrency: 1, partSize: 5 * 1024 * 1024, resume: false });
      const TOTAL = 23 * 1024 * 1024 + 777; // 5 parts, the last one short
      const source = window.streams.make(TOTAL, { seed: 7, chunk: 256 * 1024 });
      let waitingCancelled = false;
      const waiting = new ReadableStream({ cancel() { waitingCancelled = true; } });
      const queueTotals = [];
      const itemTotals = [];
      queue.on('progress', (p) => queueTotals.push(p.bytesTotal));
      const first = queue.add(source.stream, { filename: 'generated.bin', contentType: 'application/octet-stream' });
      queue.on('item-progress', ({ item, progress }) => {
        if (item === first) itemTotals.push([progress.bytesTotal, progress.partsTotal]);
      });
      const second = queue.add(waiting, { filename: 'never.bin' });
      const sizeWhileOpen = first.size;
      second.cancel();
      const secondOutcome = await second.promise.then(() => 'resolved', (e) => e.code);
      const result = await first.promise;
      await queue.idle();
      return {
        key: result.key,
        size: result.size,
        sha256: await source.done,
        total: TOTAL,
        sizeWhileOpen,
        sizeAfter: first.size,
        state: first.state,
        queueTotals,
        itemTotals,
        final: queue.progress,
        second: { state: second.state, outcome: secondOutcome, cancelled: waitingCancelled },
      };
    });
    assert.deepEqual(errors, []);
    assert.equal(out.state, 'done');
    assert.equal(out.size, out.total);
    assert.equal(out.sizeWhileOpen, null, 'a stream has no size until it ends');
    assert.equal(out.sizeAfter, out.total);
    assert.ok(out.queueTotals.includes(null), 'the queue has no total while the stream is read');
    assert.equal(out.queueTotals.at(-1), out.total);
    assert.ok(out.itemTotals.some(([bytes, parts]) => bytes === null && parts === null), JSON.stringify(out.itemTotals));
    assert.deepEqual(out.itemTotals.at(-1), [out.total, 5]);
    assert.equal(out.final.fraction, 1);
    assert.deepEqual(await objectSha256(s3, bucket, out.key), { sha256: out.sha256, size: out.total });
    assert.deepEqual(out.second, { state: 'cancelled', outcome: 'aborted', cancelled: true },
      'a stream cancelled before its turn is cancelled (its `cancel` runs)');
    await page.close();
  });
});
