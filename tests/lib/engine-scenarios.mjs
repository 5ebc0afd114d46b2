// Scenario bodies shared by the engine test files (tests/e2e/engines*.test.mjs): each drives the
// demo page through the engine interface of tests/lib/engines.mjs and checks the store through S3,
// so the same body runs on the embedded store and on a real one.
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { launchEngine, openDemoPage, waitForDemoRow } from './engines.mjs';
import { startProxy } from './proxy.mjs';
import { objectSha256, s3Client } from './s3.mjs';
import { embeddedCredentials, startServer } from './server.mjs';

/** Retry quickly: the faults are on loopback, and the tests should not wait for backoffs. */
export const fastRetries = { retryDelay: 100, maxRetryDelay: 1000, retries: 8 };

/**
 * Starts engine `name`, the fault proxy and a server on the embedded store whose part URLs name
 * the proxy, while `alongside` (more promises, e.g. test files) settle; resolves to
 * `{ engine, proxy, server, s3, extras, stop() }`, `extras` being what `alongside` resolved to.
 * Whatever started is stopped again when something else failed.
 */
export async function startEmbeddedStack(name, alongside = []) {
  const started = await Promise.allSettled([launchEngine(name), startProxy(), ...alongside]);
  const [engine, proxy, ...extras] = started.map((r) => r.value);
  const stack = {
    engine, proxy, extras, server: null, s3: null,
    async stop() {
      await engine?.close();
      await stack.server?.stop();
      await proxy?.stop();
      if (stack.server) await rm(stack.server.dataDir, { recursive: true, force: true });
    },
  };
  try {
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    stack.server = await startServer({ args: ['--public-endpoint', proxy.url] });
    proxy.setTarget(stack.server.storeEndpoint);
    stack.s3 = s3Client({ endpoint: stack.server.storeEndpoint, ...embeddedCredentials });
    return stack;
  } catch (err) {
    await stack.stop();
    throw err;
  }
}

/** Every file below `dir`, as paths relative to it. */
export async function walk(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** Asserts that `row` finished and that the store holds exactly `file` under its key. */
export async function expectStored(s3, bucket, row, file) {
  assert.equal(row.state, 'done', `${file.name}: ${row.detail}`);
  assert.ok(row.key.endsWith(`/${file.name}`), `key ${row.key} keeps the file name`);
  const stored = await objectSha256(s3, bucket, row.key);
  assert.equal(stored.size, file.size, `${file.name}: stored size`);
  assert.equal(stored.sha256, file.sha256, `${file.name}: stored SHA-256 equals the file's`);
}

/** Resolves once `check()` (which may be async) holds; throws after `timeout` ms. */
export async function until(check, what, timeout = 60_000) {
  const end = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => { setTimeout(r, 20); });
  }
}

/**
 * The demo uploads `big` (≥ 256 MiB) and two small files at once; every object read back has its
 * file's SHA-256. `screenshot` (a path or null) keeps the page after the uploads.
 */
export async function bigAndSmallAtOnce({ engine, server, s3, bucket, files, screenshot = null }) {
  const page = await openDemoPage(engine, server.url, { partSize: 8, concurrency: 4, files: files.length });
  try {
    await page.setFiles('#picker', files.map((f) => f.path));
    const rows = await Promise.all(files.map((f) => waitForDemoRow(page, f.name)));
    if (screenshot) await page.screenshot(screenshot);
    for (const [i, row] of rows.entries()) await expectStored(s3, bucket, row, files[i]);
    // Only Chromium can keep a file's handle to reopen it after a restart (File System Access);
    // elsewhere the page leaves that choice out.
    assert.equal(await page.evaluate(() => !document.querySelector('#reopenable').hidden), engine.name === 'chromium',
      'the reopenable picker is offered where the engine has showOpenFilePicker');
    assert.deepEqual(await page.errors(), []);
  } finally {
    await page.close();
  }
}

/**
 * Cancels `file` (64 MiB) half-way: parts past the sixth are held by the proxy (never answered),
 * so "half-way" is a fact of the test, not a race with a fast loopback. `leftovers()` resolves to
 * what the store still holds of the upload (its multipart uploads, parts and objects), which
 * must be nothing.
 */
export async function cancelHalfWay({ engine, server, proxy, file, leftovers }) {
  proxy.decide = ({ part }) => (part <= 6 ? undefined : { hold: true });
  const from = proxy.log.length;
  const page = await openDemoPage(engine, server.url, { partSize: 5, concurrency: 4 });
  try {
    await page.setFiles('#picker', [file.path]);
    await page.waitFor(() => Number(document.querySelector('#queue .upload')?.dataset.partsDone ?? 0) >= 6,
      null, { what: 'six parts stored' });
    await until(() => proxy.held.length > 0, 'a part past the sixth in flight');
    assert.notDeepEqual(await leftovers(), [], 'before the cancel the store lists the upload (the check below can see one)');
    await page.click('#queue .upload .cancel');
    const row = await waitForDemoRow(page, file.name);
    assert.equal(row.state, 'cancelled', row.detail);
    assert.deepEqual(proxy.storedParts(from).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6],
      'only the first six parts reached the store');
    assert.deepEqual(await leftovers(), [], 'no multipart upload, part or object remains');
    assert.deepEqual(await page.errors(), []);
  } finally {
    proxy.decide = () => undefined;
    proxy.dropHeld();
    await page.close();
  }
}

/**
 * The first PUT of each part named in `faults` meets that fault at the proxy
 * (`{ [part]: { action, outcome } }`: a proxy action and the outcome the proxy logs for it);
 * each such part is sent again and stored, and the object equals the file. `query` adds demo
 * settings (e.g. a checksum, so a store can refuse a corrupted body).
 */
export async function faultsAreResent({ engine, server, proxy, s3, bucket, file, faults, query = {} }) {
  const first = new Set();
  proxy.decide = ({ part }) => {
    if (first.has(part)) return undefined;
    first.add(part);
    return faults[part]?.action;
  };
  const from = proxy.log.length;
  const page = await openDemoPage(engine, server.url, { partSize: 5, concurrency: 4, ...fastRetries, ...query });
  try {
    await page.setFiles('#picker', [file.path]);
    const row = await waitForDemoRow(page, file.name);
    await expectStored(s3, bucket, row, file);
    const log = proxy.log.slice(from);
    for (const [part, { outcome }] of Object.entries(faults)) {
      const puts = log.filter((e) => e.part === Number(part)).map((e) => e.outcome);
      assert.equal(puts[0], outcome, `part ${part}'s first PUT met its fault`);
      assert.ok(puts.slice(1).some((o) => o >= 200 && o < 300), `part ${part} was sent again and stored: ${puts}`);
    }
    assert.deepEqual(await page.errors(), []);
    return row;
  } finally {
    proxy.decide = () => undefined;
    await page.close();
  }
}
