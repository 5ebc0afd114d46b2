// Beyond engines.test.mjs: the widget operated by keyboard, the queue page with many small files,
// a stalled part caught by the adaptive stall timeout, losing the network, and the Vite SPA build,
// on each engine (S3_DIRECT_BROWSERS) and store (S3_DIRECT_STORES: the embedded one and Garage);
// part PUTs pass through the fault proxy. Chromium on the embedded store is left out: it has
// these in widget, queue, resilience and spa.test.mjs. Screenshots go to tests/artifacts/engines/
// (git-ignored).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  expectStored, fastRetries, ARTIFACTS, STORE_LABELS, selectedStores, shot, startStack, stopSharedStores, storeMissing, until,
} from '../lib/engine-scenarios.mjs';
import {
  engineMissing, openDemoPage, selectedEngines, waitForDemoRow,
} from '../lib/engines.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { objectSha256 } from '../lib/s3.mjs';
import { npmRun, spaDir, startVite } from '../lib/spa.mjs';


/** The element with keyboard focus, through shadow roots: its label or text, part and tag. */
const focused = (page) => page.evaluate(() => {
  let el = document.activeElement;
  while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
  return {
    label: el.getAttribute('aria-label') ?? el.textContent.trim().replace(/\s+/g, ' '),
    part: el.getAttribute('part'),
    tag: el.localName,
  };
});

/** The widget's row of `name` once `state` is reached (fails at once on another final state). */
const widgetItem = (page, name, state) => page.waitFor(([n, s]) => {
  const row = document.querySelector('s3-direct-upload').items.find((i) => i.name === n);
  return row && (row.state === s || ['done', 'error', 'cancelled'].includes(row.state)) ? row : null;
}, [name, state], { what: `${name} to be ${state}` }).then((row) => {
  assert.equal(row.state, state, `${name}: ${row.error?.message ?? row.state}`);
  return row;
});

// One SPA build for every engine of the run (tsc and vite build take a while on 2 cores).
let spaBuild;
const buildSpa = () => {
  spaBuild ??= (async () => {
    if (!existsSync(path.join(spaDir, 'node_modules/.bin/vite'))) {
      throw new Error('web/spa has no node_modules; run scripts/setup.sh test (it runs npm ci there)');
    }
    const dist = path.join(await tempDir('s3-direct-spa-'), 'dist');
    await npmRun('install-s3-direct');
    await npmRun('build', '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn');
    return dist;
  })();
  return spaBuild;
};

after(stopSharedStores);

for (const store of selectedStores()) for (const name of selectedEngines()) {
  const skip = name === 'chromium' && store === 'embedded'
    ? 'Chromium on the embedded store: covered by widget, queue, resilience and spa.test.mjs'
    : engineMissing(name) ?? storeMissing(store) ?? false;
  describe(`${name}: keyboard, queue, stall, offline and the SPA on ${STORE_LABELS[store]}`, { skip, timeout: 600_000 }, () => {
    let stack;
    let engine;
    let proxy;
    let server;
    let s3;
    let bucket;
    let dir;

    before(async () => {
      stack = await startStack(store, name, [tempDir(), mkdir(ARTIFACTS, { recursive: true })]);
      ({ engine, proxy, server, s3, bucket } = stack);
      [dir] = stack.extras;
    });

    after(async () => {
      await stack?.stop();
    });

    it('the widget by keyboard: Tab order, Enter and Space open the picker, pause, resume, cancel, remove, retry', async () => {
      const [moving, refused] = await Promise.all([
        randomFile(dir, 'keyboard-16MiB.bin', 16 * MiB),
        randomFile(dir, 'keyboard-retry-7MiB.bin', 7 * MiB),
      ]);
      proxy.decide = ({ part }) => (part > 1 ? { hold: true } : undefined);
      const page = await engine.newPage();
      try {
        await page.goto(`${server.url}/form.html`);
        await page.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the form page to load' });
        // A native file dialog cannot be driven by WebDriver: count the clicks that would open it
        // and keep it closed. Files are then chosen as WebDriver does, which moves the focus to
        // the input; a dialog would leave it on the drop zone, so it is put back there.
        await page.evaluate(() => {
          const el = document.querySelector('s3-direct-upload');
          el.setAttribute('part-size', '5MiB');
          window.pickerOpened = 0;
          el.shadowRoot.querySelector('input[type=file]').addEventListener('click', (e) => {
            window.pickerOpened += 1;
            e.preventDefault();
          });
        });
        const opened = () => page.evaluate(() => window.pickerOpened);
        const backToDropzone = () => page.evaluate(() => document.querySelector('s3-direct-upload')
          .shadowRoot.querySelector('[part~=dropzone]').focus());

        await page.press('Tab');
        assert.equal((await focused(page)).tag, 'input', 'Tab reaches the title first');
        await page.press('Tab');
        assert.equal((await focused(page)).part, 'dropzone', 'then the drop zone');
        await page.press('Enter');
        await page.waitFor(() => window.pickerOpened === 1, null, { what: 'Enter to open the picker' });
        await page.press('Space');
        await page.waitFor(() => window.pickerOpened === 2, null, { what: 'Space to open the picker' });

        await page.setFiles('s3-direct-upload >>> input[type=file]', [moving.path]);
        await backToDropzone();
        await page.waitFor((n) => document.querySelector('s3-direct-upload').items
          .some((i) => i.name === n && i.progress?.partsDone >= 1), moving.name, { what: 'a part stored' });
        await page.press('Tab');
        assert.equal((await focused(page)).label, `Pause upload of ${moving.name}`);
        await page.press('Space');
        await widgetItem(page, moving.name, 'paused');
        assert.equal((await focused(page)).label, `Resume upload of ${moving.name}`, 'focus stays on the toggled button');
        await page.press('Enter');
        await widgetItem(page, moving.name, 'uploading');
        await page.press('Tab');
        assert.equal((await focused(page)).label, `Cancel upload of ${moving.name}`);
        await page.press('Enter');
        await widgetItem(page, moving.name, 'cancelled');
        assert.equal((await focused(page)).label, `Remove ${moving.name}`, 'focus moves to what the row offers now');
        await page.press('Enter');
        await page.waitFor(() => document.querySelector('s3-direct-upload').items.length === 0, null, { what: 'the row removed' });
        assert.equal((await focused(page)).part, 'dropzone', 'focus returns to the drop zone');
        assert.equal(await opened(), 2, 'no key opened the picker again');

        // Every PUT of the next file is refused (403): the row fails and offers Retry.
        proxy.dropHeld();
        proxy.decide = () => ({ status: 403, code: 'AccessDenied' });
        await page.setFiles('s3-direct-upload >>> input[type=file]', [refused.path]);
        await backToDropzone();
        await widgetItem(page, refused.name, 'error');
        await page.screenshot(shot(name, store, 'widget-error'));
        proxy.decide = () => undefined;
        await page.press('Tab');
        assert.equal((await focused(page)).label, `Retry upload of ${refused.name}`, 'Tab reaches Retry');
        await page.press('Enter');
        const row = await widgetItem(page, refused.name, 'done');
        assert.deepEqual(await objectSha256(s3, bucket, row.result.key), { sha256: refused.sha256, size: refused.size });
        assert.deepEqual(await page.errors(), []);
      } finally {
        proxy.decide = () => undefined;
        proxy.dropHeld();
        await page.close();
      }
    });

    it('the queue page takes 40 small files at once; each object equals its file', async () => {
      const sizes = Array.from({ length: 40 }, (_, i) => 1000 + i * 53_001); // 1 KB to about 2 MB
      const files = await Promise.all(sizes.map((size, i) => randomFile(dir, `queue-${String(i).padStart(2, '0')}.bin`, size)));
      const page = await engine.newPage();
      try {
        await page.goto(`${server.url}/queue.html`);
        await page.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the queue page to load' });
        await page.setFiles('#picker', files.map((f) => f.path));
        const rows = await page.waitFor((n) => {
          const items = [...document.querySelectorAll('#items li')];
          if (items.length !== n || items.some((li) => !['done', 'error', 'cancelled'].includes(li.dataset.state))) return null;
          return items.map((li) => ({ state: li.dataset.state, key: li.dataset.key ?? null, title: li.title }));
        }, files.length, { timeout: 120_000, what: 'the 40 uploads to end' });
        await page.screenshot(shot(name, store, 'queue'));
        assert.match(await page.evaluate(() => document.querySelector('#status').textContent), /^40 of 40 files/);
        for (const [i, r] of rows.entries()) {
          assert.equal(r.state, 'done', `${files[i].name}: ${r.title}`);
          assert.ok(r.key.endsWith(`/${files[i].name}`), r.key);
          assert.deepEqual(await objectSha256(s3, bucket, r.key), { sha256: files[i].sha256, size: files[i].size }, files[i].name);
        }
        assert.deepEqual(await page.errors(), []);
      } finally {
        await page.close();
      }
    });

    it('a part whose body stops moving half-way is sent again by the adaptive stall timeout; the upload completes', async (t) => {
      const file = await randomFile(dir, 'stall-128MiB.bin', 128 * MiB);
      // Of 16 parts of 8 MiB: in the third round, once parts were answered. Full speed, default
      // settings: on loopback Firefox fires one to three progress events per part (too few gaps
      // for the timeout to adapt by them) and WebKit reports a part wholly sent once the socket
      // buffers took it; the answered parts' times catch the stall in both (engine/stall.rs).
      const stalled = 9;
      let held = false;
      proxy.decide = ({ part }) => {
        if (part !== stalled || held) return undefined;
        held = true;
        // 1 MiB passes, then nothing.
        return { stallAfter: MiB };
      };
      const from = proxy.log.length;
      // Default settings: no stall timeout is given, the client derives it from what it sees.
      const page = await openDemoPage(engine, server.url, { partSize: 8 });
      try {
        await page.setFiles('#picker', [file.path]);
        const row = await waitForDemoRow(page, file.name);
        await expectStored(s3, bucket, row, file);
        const puts = proxy.log.slice(from).filter((e) => e.part === stalled);
        assert.ok(puts.length >= 2, 'the stalled part was sent again');
        assert.equal(puts[0].outcome, 'pending', 'its first PUT never got an answer');
        const after = puts[1].at - puts[0].at;
        // The adaptive timeout's floor is 4 s, the first retry waits up to 1 s (the ceiling: 30 s).
        assert.ok(after < 10_000, `the stalled part was sent again after ${after} ms`);
        t.diagnostic(`the stalled part was sent again ${after} ms after its first PUT began`);
        assert.deepEqual(await page.errors(), []);
      } finally {
        proxy.decide = () => undefined;
        proxy.dropHeld();
        await page.close();
      }
    });

    it('losing the network mid-upload: the upload waits or retries, and finishes once it is back', async (t) => {
      const file = await randomFile(dir, 'offline-30MiB.bin', 30 * MiB);
      proxy.throttle = 4 * MiB;
      const page = await openDemoPage(engine, server.url, { partSize: 5, concurrency: 2, ...fastRetries });
      const phase = () => page.evaluate(() => document.querySelector('#queue .upload')?.dataset.phase);
      try {
        await page.setFiles('#picker', [file.path]);
        await page.waitFor(() => Number(document.querySelector('#queue .upload')?.dataset.partsDone ?? 0) >= 1,
          null, { what: 'a part stored' });
        if (page.setOffline) {
          // Firefox (WebDriver BiDi): the browser goes offline; the client waits, spending no retry.
          await page.setOffline(true);
          await page.waitFor(() => document.querySelector('#queue .upload')?.dataset.phase === 'offline',
            null, { what: 'the upload to wait for the network' });
          const log = proxy.log.length;
          await new Promise((r) => { setTimeout(r, 1500); }); // time in which nothing may happen
          assert.equal(await phase(), 'offline', 'still waiting, not failed');
          assert.equal(proxy.log.length, log, 'no part PUT leaves while offline');
          await page.setOffline(false);
        } else {
          // WebKit: classic WebDriver cannot take the browser offline; the store's host stops
          // answering instead (every connection cut), for longer than one retry's wait.
          t.diagnostic('no offline switch in this driver: the proxy refuses connections instead');
          const from = proxy.refused;
          proxy.refusing = true;
          await until(() => proxy.refused - from >= 3, 'three attempts refused');
          proxy.refusing = false;
        }
        const row = await waitForDemoRow(page, file.name);
        await expectStored(s3, bucket, row, file);
        assert.deepEqual(await page.errors(), []);
      } finally {
        proxy.throttle = 0;
        proxy.refusing = false;
        if (page.setOffline) await page.setOffline(false).catch(() => {});
        await page.close();
      }
    });

    it('the Vite SPA build uploads 24 MiB with CRC32C checksums from its bundled worker', async () => {
      const [dist, file] = await Promise.all([buildSpa(), randomFile(dir, 'spa-24MiB.bin', 24 * MiB)]);
      const vite = await startVite(['preview', '--outDir', dist], server.url);
      const page = await engine.newPage();
      try {
        await page.goto(`${vite.url}/?checksum=crc32c&partSize=5`);
        await page.evaluate(() => {
          const Native = window.Worker;
          window.startedWorkers = [];
          window.Worker = class extends Native {
            constructor(url, options) {
              super(url, options);
              window.startedWorkers.push(String(url));
            }
          };
        });
        await page.waitFor(() => document.querySelector('main')?.dataset.ready === 'true', null, { what: 'the app to load' });
        await page.setFiles('[data-testid="files"]', [file.path]);
        const row = await page.waitFor(() => {
          const r = document.querySelector('[data-testid="file-row"]');
          if (!r || !['done', 'error', 'cancelled'].includes(r.dataset.state)) return null;
          return { state: r.dataset.state, key: r.querySelector('[data-testid="key"]')?.textContent ?? null, text: r.innerText };
        }, null, { timeout: 120_000, what: 'the SPA upload to end' });
        await page.screenshot(shot(name, store, 'spa'));
        assert.equal(row.state, 'done', row.text);
        assert.ok(row.key.endsWith(`/${file.name}`), row.key);
        assert.deepEqual(await objectSha256(s3, bucket, row.key), { sha256: file.sha256, size: file.size });
        const workers = await page.evaluate(() => window.startedWorkers);
        assert.equal(workers.length, 1, `one checksum worker: ${workers}`);
        assert.match(workers[0], /\/assets\/checksum-worker-[\w-]+\.js$/, 'the bundled worker');
        assert.deepEqual(await page.errors(), []);
      } finally {
        await page.close();
        await vite.stop();
      }
    });
  });
}
