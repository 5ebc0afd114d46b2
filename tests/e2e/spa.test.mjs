// The Vite + React example in web/spa, built against the s3-direct npm package as a user gets it:
// the test packs wasm-client/pkg with `npm pack`, installs the tarball into the example (its own
// npm scripts, `install-s3-direct` and `build`: tsc, then vite build), serves the bundle with
// `vite preview` (which forwards /s3 to the signing server) and uploads through it in headless
// Chromium: 64 MiB with part checksums from the Web Worker the package starts inside the bundle;
// pause, resume and cancel from the page's buttons; the worker script refused (hashing falls back
// to the page). The last test goes through `vite` (the dev server, which pre-bundles the package).
// The progress the page shows is recorded in the page and must rise monotonically to a single 100.
//
// Needs web/spa/node_modules (`scripts/setup.sh test` runs `npm ci` there) and a built
// wasm-client/pkg (`wasm-client/build.sh`).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { launchBrowser } from '../lib/browser.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from '../lib/server.mjs';
import { npmRun, spaDir, startVite } from '../lib/spa.mjs';

const bucket = 's3-direct';

/**
 * Opens the example and records, in the page, every percentage it shows (the text React renders
 * from its state) for each file and for the whole queue, before any script of the app runs.
 */
async function openApp(browser, url) {
  const page = await browser.newPage();
  const problems = [];
  const workers = [];
  const apiCalls = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on('worker', (w) => workers.push(w.url()));
  page.on('request', (r) => {
    const { pathname } = new URL(r.url());
    if (pathname.startsWith('/s3/')) apiCalls.push(`${r.method()} ${pathname.replace(/\/multipart\/[^/]+/, '/multipart/ID')}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.request().method()} ${r.url()} answered ${r.status()}`);
  });
  await page.addInitScript(() => {
    const shown = { total: [], files: {} };
    window.percentShown = shown;
    const record = (list, text) => {
      if (text !== undefined && text !== list.at(-1)) list.push(text);
    };
    new MutationObserver(() => {
      record(shown.total, document.querySelector('[data-testid="total-percent"]')?.textContent);
      for (const row of document.querySelectorAll('[data-testid="file-row"]')) {
        const name = row.querySelector('.name').textContent;
        record(shown.files[name] ??= [], row.querySelector('[data-testid="percent"]').textContent);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(url);
  await page.waitForSelector('main[data-ready="true"]', { timeout: 30_000 }).catch((err) => {
    throw new Error(`the example did not load: ${problems.join('; ') || err.message}`);
  });
  return { page, problems, workers, apiCalls };
}

/** Adds `files` to the app's queue and waits for all of them to finish; returns what the page shows. */
async function uploadThroughApp(page, files) {
  await page.setInputFiles('[data-testid="files"]', files.map((f) => f.path));
  await page.waitForFunction((n) => {
    const rows = [...document.querySelectorAll('[data-testid="file-row"]')];
    return rows.length === n && rows.every((r) => ['done', 'error', 'cancelled'].includes(r.dataset.state));
  }, files.length, { timeout: 180_000, polling: 100 });
  return page.evaluate(() => ({
    rows: Object.fromEntries([...document.querySelectorAll('[data-testid="file-row"]')].map((r) => [
      r.querySelector('.name').textContent,
      {
        state: r.dataset.state,
        key: r.querySelector('[data-testid="key"]')?.textContent ?? null,
        text: r.innerText,
      },
    ])),
    total: window.percentShown.total.map(Number),
    files: Object.fromEntries(Object.entries(window.percentShown.files).map(([k, v]) => [k, v.map(Number)])),
  }));
}

/** The percentages shown rise monotonically from 0 and end at 100, shown exactly once. */
function assertProgress(shown, what, { along = 4 } = {}) {
  const seq = shown.join(', ');
  assert.ok(shown.length >= along, `${what}: progress was shown along the way: ${seq}`);
  assert.equal(shown[0], 0, `${what}: progress starts at 0: ${seq}`);
  for (let i = 1; i < shown.length; i++) {
    assert.ok(shown[i] >= shown[i - 1], `${what}: progress went back from ${shown[i - 1]} to ${shown[i]}: ${seq}`);
  }
  assert.equal(shown.at(-1), 100, `${what}: progress ends at 100: ${seq}`);
  assert.equal(shown.filter((p) => p === 100).length, 1, `${what}: 100 % is shown once: ${seq}`);
}

/** The file's row says done, shows a key, and the object under that key is the file. */
async function assertStored(s3, shown, file) {
  const row = shown.rows[file.name];
  assert.equal(row?.state, 'done', `${file.name}: ${row?.text}`);
  assert.ok(row.key?.endsWith(`/${file.name}`), `the page shows the key: ${row.key}`);
  assert.deepEqual(await objectSha256(s3, bucket, row.key), { sha256: file.sha256, size: file.size }, file.name);
}

describe('Vite SPA example (web/spa) with the packed npm package', () => {
  let browser;
  let server;
  let s3;
  let dist;

  before(async () => {
    if (!existsSync(path.join(spaDir, 'node_modules/.bin/vite'))) {
      throw new Error('web/spa has no node_modules; run scripts/setup.sh test (it runs npm ci there)');
    }
    if (!existsSync(path.join(repoRoot, 'wasm-client/pkg/package.json'))) {
      throw new Error('wasm-client/pkg is not built; run wasm-client/build.sh');
    }
    dist = path.join(await tempDir('s3-direct-spa-'), 'dist');
    // npm pack wasm-client/pkg and npm install the tarball, then tsc and vite build.
    await npmRun('install-s3-direct');
    await npmRun('build', '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn');
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('the production build uploads 64 MiB with MD5 part checksums from its worker; progress reaches 100 % once', async () => {
    const file = await randomFile(await tempDir(), 'spa-64mib.bin', 64 * MiB);
    const vite = await startVite(['preview', '--outDir', dist], server.url);
    const { page, problems, workers } = await openApp(browser, `${vite.url}/?checksum=md5`);
    try {
      const shown = await uploadThroughApp(page, [file]);
      await assertStored(s3, shown, file);
      assertProgress(shown.files[file.name], file.name);
      assertProgress(shown.total, 'all files');
      assert.equal(workers.length, 1, `one checksum worker ran: ${workers.join(', ')}`);
      assert.match(workers[0], /^http:\/\/127\.0\.0\.1:\d+\/assets\/checksum-worker-[\w-]+\.js$/, 'the worker is the bundled one');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
      await vite.stop();
    }
  });

  it('pause, resume and cancel from the page: the paused file completes, the cancelled one leaves no object', async () => {
    const dir = await tempDir();
    const paused = await randomFile(dir, 'spa-paused.bin', 21 * MiB);
    const cancelled = await randomFile(dir, 'spa-cancelled.bin', 16 * MiB);
    const vite = await startVite(['preview', '--outDir', dist], server.url);
    const { page, problems } = await openApp(browser, `${vite.url}/?partSize=5`);
    // Part PUTs to the store are held in the network layer while `holding`, so the page is
    // half-way when the buttons are pressed, however fast loopback is.
    const storeOrigin = new URL(server.storeEndpoint).origin;
    let holding = false;
    let held = [];
    let onHeld = () => {};
    await page.route((url) => url.origin === storeOrigin, (route) => {
      if (holding && route.request().method() === 'PUT') {
        held.push(route);
        onHeld();
        return undefined;
      }
      return route.continue();
    });
    const hold = () => {
      holding = true;
      return new Promise((resolve) => { onHeld = resolve; });
    };
    const release = async () => {
      holding = false;
      const routes = held;
      held = [];
      // Requests the page aborted meanwhile cannot be continued; that is expected.
      await Promise.all(routes.map((r) => r.continue().catch(() => {})));
    };
    const row = (file) => page.locator('[data-testid="file-row"]', { hasText: file.name });
    const inState = (file, state) => page.locator(
      `[data-testid="file-row"][data-state="${state}"]`, { hasText: file.name },
    ).waitFor({ timeout: 60_000 });
    try {
      let someHeld = hold();
      await page.setInputFiles('[data-testid="files"]', paused.path);
      await someHeld;
      await row(paused).getByRole('button', { name: 'Pause' }).click();
      await inState(paused, 'paused');
      await release();
      await row(paused).getByRole('button', { name: 'Resume' }).click();
      await inState(paused, 'done');

      someHeld = hold();
      await page.setInputFiles('[data-testid="files"]', cancelled.path);
      await someHeld;
      await row(cancelled).getByRole('button', { name: 'Cancel' }).click();
      await inState(cancelled, 'cancelled');
      await release();

      const key = await row(paused).getByTestId('key').textContent();
      assert.deepEqual(await objectSha256(s3, bucket, key), { sha256: paused.sha256, size: paused.size });
      const shown = await page.evaluate(() => window.percentShown.files);
      assertProgress(shown[paused.name].map(Number), paused.name);
      assert.ok(!shown[cancelled.name].includes('100'), `the cancelled file never shows 100 %: ${shown[cancelled.name]}`);
      assert.equal(await row(cancelled).getByTestId('key').count(), 0, 'the cancelled file has no key');
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      assert.deepEqual((listed.Contents ?? []).filter((o) => o.Key.endsWith(`/${cancelled.name}`)), []);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
      await vite.stop();
    }
  });

  it('when the worker script cannot load, parts are hashed on the page instead and the upload still completes', async () => {
    const file = await randomFile(await tempDir(), 'spa-no-worker.bin', 12 * MiB + 99);
    const vite = await startVite(['preview', '--outDir', dist], server.url);
    const { page, problems } = await openApp(browser, `${vite.url}/?checksum=md5&partSize=5`);
    // The worker's script is the first request for the checksum worker's code: refuse it, as a
    // CSP or a bundler that left the URL pointing nowhere would. The page then imports that code
    // itself (a later request, let through) and hashes there.
    let refused = 0;
    await page.context().route(/\/assets\/checksum-worker-[\w-]+\.js$/, (route) => {
      if (refused > 0) return route.continue();
      refused += 1;
      return route.fulfill({ status: 404, body: 'gone' });
    });
    try {
      const shown = await uploadThroughApp(page, [file]);
      await assertStored(s3, shown, file);
      assert.equal(refused, 1, 'the worker script was requested');
      const expected = problems.filter((p) => /answered 404|status of 404|checksum worker did not start/.test(p));
      assert.ok(problems.some((p) => /console warning: s3-direct: the checksum worker did not start/.test(p)), problems.join('\n'));
      assert.deepEqual(problems.filter((p) => !expected.includes(p)), []);
    } finally {
      await page.close();
      await vite.stop();
    }
  });

  it('the dev server (vite) loads the .wasm and the worker; a small file goes as one PUT', async () => {
    const dir = await tempDir();
    const big = await randomFile(dir, 'spa-dev.bin', 11 * MiB + 4321);
    const small = await randomFile(dir, 'spa-dev-small.bin', 300_000);
    const vite = await startVite([], server.url);
    const { page, problems, workers, apiCalls } = await openApp(browser, `${vite.url}/?checksum=md5&partSize=5`);
    try {
      const shown = await uploadThroughApp(page, [big, small]);
      await assertStored(s3, shown, big);
      await assertStored(s3, shown, small);
      // Three parts on loopback can go by within a render or two: 0, one value on the way (at
      // the latest the one shown while the upload completes), 100.
      assertProgress(shown.files[big.name], big.name, { along: 3 });
      assertProgress(shown.files[small.name], small.name, { along: 2 });
      assertProgress(shown.total, 'all files', { along: 3 });
      assert.equal(apiCalls.filter((c) => c === 'GET /s3/params').length, 1, apiCalls.join(', '));
      assert.equal(apiCalls.filter((c) => c === 'POST /s3/multipart').length, 1, apiCalls.join(', '));
      assert.equal(workers.length, 1, `one checksum worker ran: ${workers.join(', ')}`);
      assert.deepEqual(problems.filter((p) => !/\[vite\]/.test(p)), []);
    } finally {
      await page.close();
      await vite.stop();
    }
  });
});
