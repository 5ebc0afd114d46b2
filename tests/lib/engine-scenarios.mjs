// Scenario bodies shared by the engine test files (tests/e2e/engines*.test.mjs): each drives the
// demo page through the engine interface of tests/lib/engines.mjs and checks the store through S3,
// so the same body runs on the embedded store and on a real one.
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { launchEngine, openDemoPage, waitForDemoRow } from './engines.mjs';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { garageMissing, startGarage } from './garage.mjs';
import { startProxy } from './proxy.mjs';
import {
  allowBrowsers, listUploads, objectSha256, s3Client,
} from './s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from './server.mjs';

/** Retry quickly: the faults are on loopback, and the tests should not wait for backoffs. */
export const fastRetries = { retryDelay: 100, maxRetryDelay: 1000, retries: 8 };

/** The stores an engine run covers: the embedded one and a real one (see `startStack`). */
export const STORES = ['embedded', 'garage'];

/** How test names call the stores. */
export const STORE_LABELS = { embedded: 'the embedded store', garage: 'Garage' };

/** Where the engine tests put their screenshots (git-ignored). */
export const ARTIFACTS = path.join(repoRoot, 'tests/artifacts/engines');

/** A screenshot's path: `firefox-queue.png` on the embedded store, `firefox-garage-queue.png` on Garage. */
export const shot = (name, store, what) => path.join(ARTIFACTS, `${name}${store === 'embedded' ? '' : `-${store}`}-${what}.png`);

/** The stores of this run, from S3_DIRECT_STORES (default both). */
export function selectedStores() {
  const names = (process.env.S3_DIRECT_STORES ?? STORES.join(','))
    .split(',').map((n) => n.trim().toLowerCase()).filter(Boolean);
  for (const name of names) {
    if (!STORES.includes(name)) throw new Error(`S3_DIRECT_STORES names "${name}"; the stores are ${STORES.join(', ')}`);
  }
  return names;
}

/** Why `store` cannot be tested here (a sentence), or null; under CI=true never a reason. */
export function storeMissing(store) {
  return store === 'garage' ? garageMissing() : null;
}

// One single-node Garage for every engine of a test file: it takes seconds to start. Stopped
// by `stopSharedStores` (each engine file calls it in its last `after`).
let sharedGarage;
function garageOnce() {
  sharedGarage ??= startGarage().then(async (garage) => {
    const s3 = s3Client({
      endpoint: garage.endpoint, region: garage.region, accessKeyId: garage.accessKey, secretAccessKey: garage.secretKey,
    });
    await allowBrowsers(s3, garage.bucket);
    return { garage, s3 };
  });
  return sharedGarage;
}

/** Stops what `startStack` shares between engines (the Garage of the file's run). */
export async function stopSharedStores() {
  const started = await sharedGarage?.catch(() => null);
  sharedGarage = undefined;
  await started?.garage.stop();
}

/**
 * Starts engine `name`, the fault proxy and a signing server on `store` whose part URLs name the
 * proxy (which forwards them with their Host unchanged), while `alongside` (more promises, e.g.
 * test files) settle. Resolves to `{ engine, proxy, server, s3, bucket, store, extras,
 * leftovers(fileName), stop() }`: `extras` is what `alongside` resolved to, `leftovers` what the
 * store still holds of uploads of a file of that name (multipart uploads, parts, objects).
 *
 * - `embedded`: the server's own s3s-fs store in a fresh data directory. It cannot list multipart
 *   uploads, so its data directory is read: s3s-fs keeps an upload as `.upload-<id>.json` plus
 *   `.upload_id-<id>.part-<n>` in its root.
 * - `garage`: a single-node Garage (one per test file), which checks what the embedded store
 *   cannot: ListMultipartUploads, CORS, a part's body against its CRC32C (docs/stores.md).
 *
 * Whatever started is stopped again when something else failed.
 */
export async function startStack(store, name, alongside = []) {
  const backing = store === 'garage' ? garageOnce() : Promise.resolve(null);
  const started = await Promise.allSettled([launchEngine(name), startProxy(), backing, ...alongside]);
  const [engine, proxy, shared, ...extras] = started.map((r) => r.value);
  const stack = {
    engine, proxy, extras, store, server: null, s3: null, bucket: null,
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
    if (store === 'garage') {
      const { garage, s3 } = shared;
      stack.server = await startServer({
        args: ['--endpoint', garage.endpoint, '--bucket', garage.bucket, '--region', garage.region,
          '--path-style', '--public-endpoint', proxy.url],
        env: { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey },
      });
      proxy.setTarget(garage.endpoint);
      Object.assign(stack, { s3, bucket: garage.bucket });
      stack.leftovers = async (fileName) => {
        const uploads = (await listUploads(s3, garage.bucket)).filter((u) => u.Key.endsWith(`/${fileName}`));
        const objects = (await s3.send(new ListObjectsV2Command({ Bucket: garage.bucket }))).Contents ?? [];
        return [
          ...uploads.map((u) => `upload ${u.Key}`),
          ...objects.filter((o) => o.Key.endsWith(`/${fileName}`)).map((o) => `object ${o.Key}`),
        ];
      };
    } else {
      stack.server = await startServer({ args: ['--public-endpoint', proxy.url] });
      proxy.setTarget(stack.server.storeEndpoint);
      stack.s3 = s3Client({ endpoint: stack.server.storeEndpoint, ...embeddedCredentials });
      stack.bucket = 's3-direct';
      const dataDir = stack.server.dataDir;
      stack.leftovers = async (fileName) => (await walk(dataDir))
        .filter((f) => /(^|\/)\.upload/.test(f) || f.endsWith(fileName));
    }
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
