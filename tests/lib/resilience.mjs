// Browser scenarios for uploads that survive the real world: faults injected by the proxy in
// tests/lib/proxy.mjs, short-lived URLs, a reload half-way, a signing server that dies. Each
// takes a running server whose presigned URLs point at `proxy` (tests/lib/proxied-stack.mjs
// starts the lot), and checks the stored object byte for byte.
import assert from 'node:assert/strict';
import { openDemo, waitForRow } from './browser.mjs';
import { randomFile, tempDir, MiB } from './files.mjs';
import { seededRandom } from './proxy.mjs';
import { objectSha256, storedChecksum } from './s3.mjs';

/** Retry quickly: the faults are on loopback, and the tests should not wait for backoffs. */
const fastRetries = { retryDelay: 100, maxRetryDelay: 1000, retries: 8 };

async function expectStored(s3, bucket, row, file) {
  assert.equal(row.state, 'done', row.detail);
  const stored = await objectSha256(s3, bucket, row.key);
  assert.equal(stored.size, file.size, 'stored size');
  assert.equal(stored.sha256, file.sha256, 'stored SHA-256 equals the file\'s');
}

/** Resolves once the page's row shows at least `n` parts stored. */
function partsDone(page, n) {
  return page.waitForFunction((want) => {
    const row = document.querySelector('#queue .upload');
    return row && Number(row.dataset.partsDone ?? 0) >= want;
  }, n, { timeout: 120_000, polling: 50 });
}

/** Resolves once `check()` is true, polling the proxy's state. */
async function until(check, what, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => { setTimeout(r, 20); });
  }
}

/**
 * A file of `sizeMiB` in 5 MiB parts, with a fifth of its parts (chosen at random) failing once:
 * cut mid-body, answered 500 or 503 SlowDown, or delayed. The upload must complete and the
 * object equal the file. The seed is printed so a failure can be replayed (S3_DIRECT_SEED).
 */
export async function randomFaults({ browser, server, proxy, s3, bucket, sizeMiB = 256 }) {
  const seed = Number(process.env.S3_DIRECT_SEED ?? Date.now() % 1e9);
  const random = seededRandom(seed);
  const parts = Math.ceil(sizeMiB / 5);
  const numbers = Array.from({ length: parts }, (_, i) => i + 1);
  for (let i = numbers.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [numbers[i], numbers[j]] = [numbers[j], numbers[i]];
  }
  const faulty = new Map();
  for (const part of numbers.slice(0, Math.ceil(parts / 5))) {
    const length = part < parts ? 5 * MiB : sizeMiB * MiB - 5 * MiB * (parts - 1);
    const kinds = [
      { cutAfter: 1 + Math.floor(random() * (Math.min(4 * MiB, length) - 1)) },
      { status: 500, code: 'InternalError' },
      { status: 503, code: 'SlowDown' },
      { delayMs: 300 + Math.floor(random() * 700) },
    ];
    faulty.set(part, kinds[Math.floor(random() * kinds.length)]);
  }
  const seen = new Set();
  proxy.decide = ({ part }) => {
    if (seen.has(part)) return undefined;
    seen.add(part);
    return faulty.get(part);
  };

  const dir = await tempDir();
  const file = await randomFile(dir, `faults-${sizeMiB}MiB.bin`, sizeMiB * MiB);
  const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 4, ...fastRetries });
  const from = proxy.log.length; // the proxy may have served earlier tests
  try {
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name, { timeout: 300_000 });
    await expectStored(s3, bucket, row, file).catch((err) => {
      err.message += ` (seed ${seed})`;
      throw err;
    });
    const log = proxy.log.slice(from);
    const injected = log.filter((e) => e.action !== 'pass');
    assert.equal(injected.length, faulty.size, `every chosen part met its fault (seed ${seed})`);
    for (const [part, fault] of faulty) {
      if (fault.delayMs) continue;
      const puts = log.filter((e) => e.part === part).length;
      assert.ok(puts >= 2, `part ${part} failed (${JSON.stringify(fault)}) and was sent again (seed ${seed})`);
    }
    assert.deepEqual(page.pageErrors, []);
  } finally {
    proxy.decide = () => undefined;
    await page.close();
  }
}

/**
 * URLs live 5 s (the server runs with --url-lifetime 5), parts take seconds on a throttled link,
 * and the proxy refuses expired URLs as S3 does: the upload completes by re-signing.
 */
export async function resignsShortLivedUrls({ browser, server, proxy, s3, bucket }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'short-lived-urls.bin', 30 * MiB);
  proxy.throttle = 1.5 * MiB;
  const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 2, ...fastRetries });
  const signed = [];
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.pathname.endsWith('/batch')) signed.push(url.searchParams.get('partNumbers'));
  });
  // The first parts come signed with the create answer.
  const created = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith('/multipart')) {
      created.push(r.json().then((b) => Object.keys(b.presigned?.presignedUrls ?? {}).join(','), () => ''));
    }
  });
  try {
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name, { timeout: 120_000 });
    await expectStored(s3, bucket, row, file);
    signed.unshift(...(await Promise.all(created)).filter(Boolean));
    const signedParts = signed.flatMap((s) => s.split(',')).length;
    assert.ok(signedParts > 6, `parts were re-signed (${signed.join(' | ')})`);
  } finally {
    proxy.throttle = 0;
    await page.close();
  }
}

/** The resume records the page's IndexedDB holds: [{ key, parts: [numbers] }]. */
export function resumeRecords(page) {
  return page.evaluate(() => new Promise((resolve) => {
    const req = indexedDB.open('s3-direct');
    req.onerror = () => resolve([]);
    req.onsuccess = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('resume')) return resolve([]);
      const all = db.transaction('resume').objectStore('resume').getAll();
      all.onsuccess = () => resolve(all.result.map((v) => {
        const r = JSON.parse(v.json);
        return { key: r.key, parts: Object.keys(r.parts).map(Number) };
      }));
      all.onerror = () => resolve([]);
      return undefined;
    };
  }));
}

/**
 * Reloads the page half-way through a 256 MiB upload and chooses the file again. The first
 * `done` parts reach the store; the next ones are held in the proxy (in flight) when the page
 * reloads. After the reload, no part that was stored may be sent again.
 */
export async function reloadAndChooseAgain({ browser, server, proxy, s3, bucket, sizeMiB = 256 }) {
  const done = 20;
  const concurrency = 4;
  const dir = await tempDir();
  const file = await randomFile(dir, `reload-${sizeMiB}MiB.bin`, sizeMiB * MiB);
  proxy.decide = ({ part }) => (part > done ? { hold: true } : undefined);
  const context = await browser.newContext();
  const page = await openDemo(context, server.url, { partSize: 5, concurrency, ...fastRetries });
  try {
    await page.setInputFiles('#picker', file.path);
    await partsDone(page, done);
    await until(() => proxy.held.length === concurrency, 'the in-flight parts to be held');
    // The record is written as parts are stored; wait until it holds all of them.
    for (;;) {
      const records = await resumeRecords(page);
      if (records.some((r) => r.parts.length >= done)) break;
      await new Promise((r) => { setTimeout(r, 50); });
    }
    const inFlight = proxy.held;
    const before = proxy.log.length;
    proxy.decide = () => undefined;
    await page.reload();
    proxy.dropHeld();
    await page.waitForSelector('body[data-ready="true"]');
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name, { timeout: 300_000 });
    await expectStored(s3, bucket, row, file);

    const after = proxy.log.slice(before).map((e) => e.part);
    const resent = [...new Set(after.filter((p) => p <= done + concurrency))].sort((a, b) => a - b);
    assert.ok(
      resent.every((p) => inFlight.includes(p)),
      `re-sent ${resent} but only ${inFlight} were in flight`,
    );
    assert.ok(after.every((p) => p > done), 'no stored part was sent again');
    assert.deepEqual(await resumeRecords(page), [], 'the finished upload left no record');
  } finally {
    proxy.decide = () => undefined;
    proxy.dropHeld();
    await context.close();
  }
}

/**
 * Kills the signing server (SIGKILL) while parts are in flight and starts it again on the same
 * port a moment later: the upload must finish, the client retrying the calls it missed.
 */
export async function survivesServerRestart({ browser, getServer, restartServer, proxy, s3, bucket }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'server-restart.bin', 60 * MiB);
  proxy.decide = ({ part }) => (part > 4 ? { hold: true } : undefined);
  const page = await openDemo(browser, getServer().url, { partSize: 5, concurrency: 2, ...fastRetries });
  try {
    await page.setInputFiles('#picker', file.path);
    await partsDone(page, 4);
    await until(() => proxy.held.length > 0, 'a held part');
    await getServer().kill();
    proxy.decide = () => undefined;
    proxy.dropHeld(); // the PUTs fail and are retried while the server is down
    await new Promise((r) => { setTimeout(r, 1000); });
    await restartServer();
    const row = await waitForRow(page, file.name, { timeout: 120_000 });
    await expectStored(s3, bucket, row, file);
  } finally {
    proxy.decide = () => undefined;
    await page.close();
  }
}

/** `algo:BASE64-N` of a file on disk cut in `partSize` parts, as the client reports it. */
export async function compositeChecksum(filePath, partSize, algorithm) {
  const { createHash } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  const data = await readFile(filePath);
  const digests = [];
  for (let at = 0; at < data.length || at === 0; at += partSize) {
    digests.push(createHash(algorithm).update(data.subarray(at, at + partSize)).digest());
    if (data.length === 0) break;
  }
  const whole = createHash(algorithm).update(Buffer.concat(digests)).digest('base64');
  return `${algorithm}:${whole}-${digests.length}`;
}

/**
 * Uploads with `checksum` chosen by the page: every part is read and hashed in the Web Worker,
 * and the result's composite checksum must equal the one computed here from the file.
 */
export async function checksumsInAWorker({ browser, server, s3, bucket, algorithm }) {
  const dir = await tempDir();
  const file = await randomFile(dir, `checksummed-${algorithm}.bin`, 23 * MiB + 12345);
  const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 4, checksum: algorithm });
  const workers = [];
  page.on('worker', (w) => workers.push(w.url()));
  try {
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name);
    await expectStored(s3, bucket, row, file);
    assert.equal(row.checksum, await compositeChecksum(file.path, 5 * MiB, algorithm));
    // The upload was created for these part checksums (MD5 needs no declaring), so the store
    // keeps the object's composite checksum: the one the browser computed.
    const kept = algorithm === 'md5' ? undefined : row.checksum;
    assert.equal(await storedChecksum(s3, bucket, row.key), kept);
    assert.equal(workers.length, 1, 'the parts were hashed in one Web Worker');
    assert.deepEqual(page.pageErrors, []);
  } finally {
    await page.close();
  }
}

/**
 * Records the `checksum` the signing server names in its create and small-file answers, in
 * the order the page received them.
 */
function checksumsAsked(page) {
  const asked = [];
  page.on('response', (r) => {
    const { pathname } = new URL(r.url());
    const create = r.request().method() === 'POST' && pathname.endsWith('/multipart');
    if (create || pathname.endsWith('/params')) {
      asked.push(r.json().then((b) => b.checksum ?? null, () => null));
    }
  });
  return () => Promise.all(asked);
}

/**
 * The proxy flips one byte in the first PUT of part 2. With part checksums the store must
 * refuse that body (BadDigest) and the client send it again; the object must equal the file.
 * `checksum`: the page's option (null: its default, `auto`, the one the server asks for).
 * Resolves to the checksums the server asked for.
 */
export async function corruptedBodyIsRefusedAndResent({
  browser, server, proxy, s3, bucket, checksum = 'md5',
}) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'corrupted-once.bin', 17 * MiB);
  let corrupted = false;
  proxy.decide = ({ part }) => {
    if (part !== 2 || corrupted) return undefined;
    corrupted = true;
    return { corruptAt: 123_457 };
  };
  const query = { partSize: 5, concurrency: 2, ...fastRetries };
  if (checksum !== null) query.checksum = checksum;
  const page = await openDemo(browser, server.url, query);
  const asked = checksumsAsked(page);
  const from = proxy.log.length; // the proxy may have served earlier tests
  try {
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name);
    await expectStored(s3, bucket, row, file);
    const part2 = proxy.log.slice(from).filter((e) => e.part === 2);
    assert.equal(part2[0].outcome, 400, 'the store refused the corrupted body');
    assert.ok(part2.length >= 2 && part2.at(-1).outcome === 200, 'and the part was sent again');
    return await asked();
  } finally {
    proxy.decide = () => undefined;
    await page.close();
  }
}

/**
 * A small file (one PUT, no multipart upload) sent by an `UploadQueue` with its default options
 * (checksum `auto`, files up to 5 MiB as one PUT) from web/queue.html, one byte flipped by the
 * proxy on its first attempt: the store must refuse it, the client send it again, and the
 * object equal the file. Resolves to the checksums the server asked for.
 */
export async function corruptedSmallFileIsRefusedAndResent({ browser, server, proxy, s3, bucket }) {
  let corrupted = false;
  proxy.decideObject = () => {
    if (corrupted) return undefined;
    corrupted = true;
    return { corruptAt: 4242 };
  };
  const from = proxy.objects.length;
  const page = await browser.newPage();
  const asked = checksumsAsked(page);
  try {
    await page.goto(`${server.url}/queue.html`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    const file = await page.evaluate(async (retries) => {
      const size = 300_001;
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
      const queue = new window.s3direct.UploadQueue({ resume: false, ...retries });
      const result = await queue.add(new Blob([bytes]), { filename: 'small-corrupted-once.bin' }).promise;
      return { key: result.key, size, sha256: [...digest].map((x) => x.toString(16).padStart(2, '0')).join('') };
    }, fastRetries);
    const stored = await objectSha256(s3, bucket, file.key);
    assert.deepEqual(stored, { sha256: file.sha256, size: file.size }, "stored SHA-256 equals the file's");
    const puts = proxy.objects.slice(from);
    assert.equal(puts[0]?.action?.corruptAt, 4242, JSON.stringify(puts));
    assert.equal(puts[0].outcome, 400, 'the store refused the corrupted body');
    assert.ok(puts.length >= 2 && puts.at(-1).outcome === 200, 'and the file was sent again');
    return await asked();
  } finally {
    proxy.decideObject = null;
    await page.close();
  }
}

/** The row's `data-phase`, as the page last showed it. */
function rowPhase(page) {
  return page.evaluate(() => document.querySelector('#queue .upload')?.dataset.phase ?? null);
}

function waitForPhase(page, phase) {
  return page.waitForFunction(
    (want) => document.querySelector('#queue .upload')?.dataset.phase === want,
    phase,
    { timeout: 30_000, polling: 50 },
  );
}

/**
 * Pause in the page stops the upload (no part PUT starts while paused), Resume finishes it, and
 * the parts stored before the pause are not sent again.
 */
export async function pauseAndResume({ browser, server, proxy, s3, bucket }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'pause-resume.bin', 40 * MiB);
  proxy.throttle = 4 * MiB;
  const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 2, ...fastRetries });
  const from = proxy.log.length; // the proxy may have served earlier tests
  try {
    await page.setInputFiles('#picker', file.path);
    await partsDone(page, 2);
    await page.click('#queue .upload .pause');
    await waitForPhase(page, 'paused');
    const stored = proxy.storedParts(from);
    const seen = proxy.log.length;
    await new Promise((r) => { setTimeout(r, 1500); });
    assert.equal(proxy.log.length, seen, 'no part PUT starts while paused');
    assert.equal(await rowPhase(page), 'paused');
    await page.click('#queue .upload .pause'); // now labelled Resume
    const row = await waitForRow(page, file.name);
    await expectStored(s3, bucket, row, file);
    const after = proxy.log.slice(seen).map((e) => e.part);
    assert.ok(after.every((p) => !stored.includes(p)), `stored parts ${stored} were not sent again`);
  } finally {
    proxy.throttle = 0;
    await page.close();
  }
}

/**
 * The browser goes offline mid-upload (Chromium's network emulation: navigator.onLine turns
 * false, requests fail): the page shows the upload waiting for the network without failing it,
 * and it finishes once the browser is back online.
 */
export async function offlineThenOnline({ browser, server, proxy, s3, bucket }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'offline-online.bin', 30 * MiB);
  // Retries would be spent in seconds; offline must not spend them at all.
  const context = await browser.newContext();
  proxy.throttle = 4 * MiB;
  const page = await openDemo(context, server.url, {
    partSize: 5, concurrency: 2, retries: 1, retryDelay: 100,
  });
  try {
    await page.setInputFiles('#picker', file.path);
    await partsDone(page, 1);
    await context.setOffline(true);
    await waitForPhase(page, 'offline');
    await new Promise((r) => { setTimeout(r, 1500); });
    assert.equal(await rowPhase(page), 'offline', 'still waiting, not failed');
    await context.setOffline(false);
    const row = await waitForRow(page, file.name);
    await expectStored(s3, bucket, row, file);
  } finally {
    proxy.throttle = 0;
    await context.close();
  }
}

/** A part PUT that stops moving (held by the proxy) is aborted after the stall timeout and sent again. */
export async function stalledPartIsRetried({ browser, server, proxy, s3, bucket }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'stalled-part.bin', 16 * MiB);
  let held = false;
  proxy.decide = ({ part }) => {
    if (part !== 2 || held) return undefined;
    held = true;
    return { hold: true };
  };
  const page = await openDemo(browser, server.url, {
    partSize: 5, concurrency: 2, stallTimeout: 1500, ...fastRetries,
  });
  const from = proxy.log.length; // the proxy may have served earlier tests
  try {
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name, { timeout: 60_000 });
    await expectStored(s3, bucket, row, file);
    const part2 = proxy.log.slice(from).filter((e) => e.part === 2);
    assert.ok(part2.length >= 2, 'the stalled part was sent again');
    assert.equal(part2[0].outcome, 'pending', 'its first PUT never got an answer');
  } finally {
    proxy.decide = () => undefined;
    proxy.dropHeld();
    await page.close();
  }
}

/**
 * With default settings, one part of a 256 MiB upload stops moving (the proxy holds its request
 * for longer than the test lasts): the stall timeout adapts to the fast link, so the part is
 * sent again within seconds of the stall's start instead of after 30 s. Returns the time from
 * the held request's arrival at the proxy to the arrival of its next attempt, in ms, and how
 * many other parts were sent more than once.
 */
export async function defaultStallIsCaughtInSeconds({ browser, server, proxy, s3, bucket }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'default-stall.bin', 256 * MiB);
  const stalled = 8; // of 16 parts of 16 MiB: in the second round of six
  let held = false;
  proxy.decide = ({ part }) => {
    if (part !== stalled || held) return undefined;
    held = true;
    return { hold: true };
  };
  const page = await openDemo(browser, server.url);
  const from = proxy.log.length; // the proxy may have served earlier tests
  try {
    await page.setInputFiles('#picker', file.path);
    const row = await waitForRow(page, file.name, { timeout: 120_000 });
    await expectStored(s3, bucket, row, file);
    const log = proxy.log.slice(from);
    const puts = log.filter((e) => e.part === stalled);
    assert.ok(puts.length >= 2, 'the stalled part was sent again');
    assert.equal(puts[0].outcome, 'pending', 'its first PUT never got an answer');
    const resentAfterMs = puts[1].at - puts[0].at;
    // The floor is 4 s and the first retry waits 0.5–1 s; 10 s leaves room for a loaded machine.
    assert.ok(resentAfterMs < 10_000, `the stalled part was sent again after ${resentAfterMs} ms`);
    const counts = new Map();
    for (const e of log) counts.set(e.part, (counts.get(e.part) ?? 0) + 1);
    const othersResent = [...counts].filter(([p, n]) => p !== stalled && n > 1).length;
    assert.deepEqual(page.pageErrors, []);
    return { resentAfterMs, othersResent };
  } finally {
    proxy.decide = () => undefined;
    proxy.dropHeld();
    await page.close();
  }
}

/**
 * Chromium's stored file handles: a file (written to the origin-private file system, whose
 * handles need no permission prompt) is enqueued with its handle, the page reloads half-way, and
 * the file is reopened from the "Interrupted uploads" list instead of being chosen again.
 */
export async function reopenFromStoredHandle({ browser, server, proxy, s3, bucket }) {
  const done = 2;
  proxy.decide = ({ part }) => (part > done ? { hold: true } : undefined);
  const context = await browser.newContext();
  const page = await openDemo(context, server.url, { partSize: 5, concurrency: 2, ...fastRetries });
  const from = proxy.log.length;
  try {
    const sha256 = await page.evaluate(async (size) => {
      const root = await navigator.storage.getDirectory();
      const handle = await root.getFileHandle('opfs-resume.bin', { create: true });
      const writable = await handle.createWritable();
      const chunk = new Uint8Array(1 << 20);
      for (let left = size; left > 0; left -= chunk.length) {
        crypto.getRandomValues(chunk.subarray(0, 65536));
        for (let i = 65536; i < chunk.length; i += 65536) chunk.copyWithin(i, 0, 65536);
        chunk[0] = left & 0xff;
        await writable.write(chunk.subarray(0, Math.min(left, chunk.length)));
      }
      await writable.close();
      const file = await handle.getFile();
      const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
      window.s3DirectDemo.addFile(file, handle);
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    }, 22 * MiB);
    await partsDone(page, done);
    await until(() => proxy.held.length > 0, 'a held part');
    for (;;) {
      const records = await resumeRecords(page);
      if (records.some((r) => r.parts.length >= done)) break;
      await new Promise((r) => { setTimeout(r, 50); });
    }
    const stored = proxy.storedParts(from);
    const before = proxy.log.length;
    proxy.decide = () => undefined;
    await page.reload();
    proxy.dropHeld();
    await page.waitForSelector('body[data-ready="true"]');
    await page.click('#interrupted li button');
    const row = await waitForRow(page, 'opfs-resume.bin');
    assert.equal(row.state, 'done', row.detail);
    const object = await objectSha256(s3, bucket, row.key);
    assert.equal(object.sha256, sha256, 'the object equals the reopened file');
    const after = proxy.log.slice(before).map((e) => e.part);
    assert.ok(after.every((p) => !stored.includes(p)), `stored parts ${stored} were not sent again`);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.locator('#interrupted li').count(), 0, 'the finished upload is no longer offered');
  } finally {
    proxy.decide = () => undefined;
    proxy.dropHeld();
    await context.close();
  }
}
