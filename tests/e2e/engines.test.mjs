// The core scenarios on each browser engine (tests/lib/engines.mjs: Chromium, Firefox ESR,
// WebKitGTK; S3_DIRECT_BROWSERS picks them) and each store (tests/lib/engine-scenarios.mjs: the
// embedded one and a single-node Garage; S3_DIRECT_STORES picks them). Part PUTs pass through the
// fault proxy, which holds or breaks them where a scenario needs it, the same way for every engine.
// Screenshots of the demo and the widget go to tests/artifacts/engines/ (git-ignored).
import assert from 'node:assert/strict';
import { link, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  engineMissing, openDemoPage, selectedEngines, waitForDemoRow,
} from '../lib/engines.mjs';
import {
  bigAndSmallAtOnce, cancelHalfWay, expectStored, fastRetries, faultsAreResent, ARTIFACTS, STORE_LABELS, selectedStores, shot, startStack,
  stopSharedStores, storeMissing, until,
} from '../lib/engine-scenarios.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { resumeRecords } from '../lib/resilience.mjs';
import { objectSha256, storedChecksum } from '../lib/s3.mjs';
import { installStreams } from '../lib/streams.mjs';


// The files are written once for every engine: 256 MiB of random bytes takes seconds to make.
let files;
function testFiles() {
  files ??= (async () => {
    const dir = await tempDir();
    const [big, accented, small] = await Promise.all([
      randomFile(dir, 'big-256MiB.bin', 256 * MiB),
      randomFile(dir, 'ñ 日本 🎉 a+b%20.bin', 1234),
      randomFile(dir, 'small.txt', 100 * 1024 + 1),
    ]);
    // The same bytes under another name, so each upload of it is a file of its own.
    const bigCrc = { ...big, name: 'big-crc32c-256MiB.bin', path: path.join(dir, 'big-crc32c-256MiB.bin') };
    await link(big.path, bigCrc.path);
    const reload = { ...big, name: 'reload-256MiB.bin', path: path.join(dir, 'reload-256MiB.bin') };
    await link(big.path, reload.path);
    const [form1, form2, cancel, faults, pause] = await Promise.all([
      randomFile(dir, 'form-3MiB.bin', 3 * MiB + 17),
      randomFile(dir, 'form-12MiB.bin', 12 * MiB + 5),
      randomFile(dir, 'cancel-me-64MiB.bin', 64 * MiB),
      randomFile(dir, 'faults-40MiB.bin', 40 * MiB),
      randomFile(dir, 'pause-40MiB.bin', 40 * MiB),
    ]);
    // One file per other part checksum, the same bytes under three names.
    const sums = {};
    for (const algorithm of ['md5', 'crc32', 'sha256']) {
      sums[algorithm] = { ...form2, name: `${algorithm}-12MiB.bin`, path: path.join(dir, `${algorithm}-12MiB.bin`) };
      await link(form2.path, sums[algorithm].path);
    }
    return { big, bigCrc, reload, accented, small, form1, form2, cancel, faults, pause, sums };
  })();
  return files;
}

after(stopSharedStores);

for (const store of selectedStores()) for (const name of selectedEngines()) {
  const skip = engineMissing(name) ?? storeMissing(store) ?? false;
  // A deadline for the engine's whole suite: a browser that hangs fails the run instead of holding it.
  describe(`${name}: the core scenarios on ${STORE_LABELS[store]}`, { skip, timeout: 600_000 }, () => {
    let stack;
    let engine;
    let proxy;
    let server;
    let s3;
    let bucket;

    before(async () => {
      stack = await startStack(store, name, [testFiles(), mkdir(ARTIFACTS, { recursive: true })]);
      ({ engine, proxy, server, s3, bucket } = stack);
      process.stderr.write(`${name}: ${engine.version} on ${STORE_LABELS[store]}\n`);
    });

    after(async () => {
      await stack?.stop();
    });

    it('the demo uploads a 256 MiB file and two small ones at once, byte for byte', async () => {
      const { big, accented, small } = await testFiles();
      await bigAndSmallAtOnce({
        engine, server, s3, bucket, files: [big, accented, small], screenshot: shot(name, store, 'demo'),
      });
    });

    it('with CRC32C part checksums the store keeps the sum the browser computed', async () => {
      const { bigCrc } = await testFiles();
      const page = await openDemoPage(engine, server.url, { partSize: 8, concurrency: 4, checksum: 'crc32c' });
      try {
        // The client hashes parts in a module worker and falls back to the page's thread where
        // one cannot start: record the workers the page starts, and whether one failed to load.
        await page.evaluate(() => {
          const Native = window.Worker;
          window.startedWorkers = [];
          window.Worker = class extends Native {
            constructor(url, options) {
              super(url, options);
              const started = { type: options?.type ?? 'classic', failed: false };
              window.startedWorkers.push(started);
              this.addEventListener('error', () => { started.failed = true; });
            }
          };
        });
        await page.setFiles('#picker', [bigCrc.path]);
        const row = await waitForDemoRow(page, bigCrc.name);
        await expectStored(s3, bucket, row, bigCrc);
        // The store verified every part against its sum and composed the object's from them.
        assert.match(row.checksum ?? '', /^crc32c:[A-Za-z0-9+/]{6}==-32$/, 'a composite of 32 parts');
        assert.equal(await storedChecksum(s3, bucket, row.key), row.checksum);
        assert.deepEqual(await page.evaluate(() => window.startedWorkers), [{ type: 'module', failed: false }],
          'the parts were hashed in one module worker');
        assert.deepEqual(await page.errors(), []);
      } finally {
        await page.close();
      }
    });

    it('with MD5, CRC32 and SHA-256 part checksums each part is verified by the store, the object equal', async () => {
      const { sums } = await testFiles();
      for (const [algorithm, file] of Object.entries(sums)) {
        const page = await openDemoPage(engine, server.url, { partSize: 5, concurrency: 4, checksum: algorithm });
        try {
          await page.setFiles('#picker', [file.path]);
          const row = await waitForDemoRow(page, file.name);
          await expectStored(s3, bucket, row, file);
          // 12 MiB in 5 MiB parts: the composite of three part sums.
          assert.match(row.checksum ?? '', new RegExp(`^${algorithm}:[A-Za-z0-9+/]+=*-3$`), `${algorithm}: ${row.checksum}`);
          // The store keeps the CRC and SHA-256 composites (S3 has no MD5 checksum of its own:
          // Content-MD5 is checked on arrival and kept nowhere but in the ETag).
          if (algorithm !== 'md5') assert.equal(await storedChecksum(s3, bucket, row.key), row.checksum, algorithm);
          assert.deepEqual(await page.errors(), []);
        } finally {
          await page.close();
        }
      }
    });

    it('a stream made in the page is uploaded as it is read, stored byte for byte, its total unknown until it ends', async () => {
      const page = await engine.newPage();
      try {
        await page.goto(`${server.url}/compress.html`);
        await page.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the page to load' });
        await page.evaluate(installStreams);
        const size = 40 * MiB + 123;
        const streamName = `stream-${name}.bin`;
        await page.evaluate((a) => window.streams.start(a), {
          name: streamName, size, stream: { seed: 3 }, uploader: { partSize: 8 * MiB, concurrency: 4 },
        });
        const outcome = await page.waitFor(() => window.streams.run.outcome, null, {
          timeout: 300_000, interval: 250, what: 'the stream upload to end',
        });
        assert.equal(outcome.error, undefined, `${outcome.error?.code}: ${outcome.error?.message}`);
        assert.equal(outcome.result.size, size);
        assert.deepEqual(await objectSha256(s3, bucket, outcome.result.key), { sha256: outcome.sha256, size });
        // [bytesSent, bytesTotal, partsTotal, ...]: no total while the stream is read, then its size.
        assert.ok(outcome.progress.some(([, total, parts]) => total === null && parts === null), 'no total at first');
        assert.deepEqual(outcome.progress.at(-1).slice(0, 3), [size, size, 6]);
        assert.deepEqual(await page.errors(), []);
      } finally {
        await page.close();
      }
    });

    it('the <s3-direct-upload> widget in a plain form posts the receipts of its two uploads', async () => {
      const { form1, form2 } = await testFiles();
      const page = await engine.newPage();
      try {
        await page.goto(`${server.url}/form.html`);
        await page.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the form page to load' });
        await page.evaluate(() => document.querySelector('s3-direct-upload').setAttribute('part-size', '5MiB'));
        await page.fill('#title', 'Harbour at dawn');
        await page.setFiles('s3-direct-upload >>> input[type=file]', [form1.path, form2.path]);
        const items = await page.waitFor(() => {
          const el = document.querySelector('s3-direct-upload');
          const list = el.items;
          if (list.some((i) => i.state === 'error')) return list; // fail now, with the messages
          return el.state === 'done' && list.length === 2 ? list : null;
        }, null, { what: 'both uploads to finish' });
        assert.deepEqual(items.map((i) => [i.name, i.state, i.error?.message ?? null]),
          [[form1.name, 'done', null], [form2.name, 'done', null]]);
        const keys = items.map((i) => i.result.key);
        assert.deepEqual(await page.evaluate(() => document.querySelector('s3-direct-upload').keys), keys);
        // Each upload's receipt (the small one's too) names its key.
        const receipts = items.map((i) => i.result.receipt);
        assert.deepEqual(receipts.map((r) => JSON.parse(Buffer.from(r.split('.')[1], 'base64url')).key), keys);
        await page.screenshot(shot(name, store, 'widget'));
        assert.deepEqual(await page.errors(), []);

        // The browser serialises the form into the page address; the page lists what it sent.
        await page.click('#submit');
        const sent = await page.waitFor(() => location.search && document.body.dataset.ready === 'true'
          && [...document.querySelectorAll('#submitted tr[data-field]')]
            .map((r) => [r.cells[0].textContent, r.cells[1].textContent]),
        null, { what: 'the form to be submitted' });
        assert.deepEqual(sent, [['title', 'Harbour at dawn'], ['files', receipts[0]], ['files', receipts[1]]]);
        await expectStored(s3, bucket, { ...items[0], key: keys[0], detail: '' }, form1);
        await expectStored(s3, bucket, { ...items[1], key: keys[1], detail: '' }, form2);
      } finally {
        await page.close();
      }
    });

    it('cancelling half-way leaves no object and no parts in the store', async () => {
      const { cancel } = await testFiles();
      await cancelHalfWay({ engine, server, proxy, file: cancel, leftovers: () => stack.leftovers(cancel.name) });
    });

    it('reloading half-way and choosing the file again re-sends only the parts in flight', async () => {
      const { reload } = await testFiles();
      const done = 6;
      const concurrency = 4;
      proxy.decide = ({ part }) => (part > done ? { hold: true } : undefined);
      const page = await openDemoPage(engine, server.url, { partSize: 8, concurrency, ...fastRetries });
      try {
        await page.setFiles('#picker', [reload.path]);
        await until(() => proxy.held.length === concurrency, 'the in-flight parts to be held');
        // The client's record (IndexedDB) is written as parts are stored; wait until it holds all.
        await until(async () => (await resumeRecords(page)).some((r) => r.parts.length >= done),
          `the resume record to hold ${done} parts`);
        const inFlight = proxy.held;
        const from = proxy.log.length;
        proxy.decide = () => undefined;
        await page.goto(await page.url());
        proxy.dropHeld();
        await page.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the reloaded page' });
        await page.setFiles('#picker', [reload.path]);
        const row = await waitForDemoRow(page, reload.name);
        await expectStored(s3, bucket, row, reload);
        const sent = proxy.log.slice(from).map((e) => e.part);
        assert.ok(sent.every((p) => p > done), `no stored part was sent again (sent ${sent})`);
        const resent = [...new Set(sent.filter((p) => p <= done + concurrency))];
        assert.ok(resent.every((p) => inFlight.includes(p)), `re-sent ${resent} but only ${inFlight} were in flight`);
        assert.deepEqual(await resumeRecords(page), [], 'the finished upload left no record');
      } finally {
        proxy.decide = () => undefined;
        proxy.dropHeld();
        await page.close();
      }
    });

    it('pause stops sending and resume finishes without re-sending stored parts', async () => {
      const { pause } = await testFiles();
      proxy.throttle = 4 * MiB; // about 10 s for the file: room to pause half-way
      const from = proxy.log.length;
      const page = await openDemoPage(engine, server.url, { partSize: 5, concurrency: 2, ...fastRetries });
      const phase = () => page.evaluate(() => document.querySelector('#queue .upload')?.dataset.phase);
      try {
        await page.setFiles('#picker', [pause.path]);
        await page.waitFor(() => Number(document.querySelector('#queue .upload')?.dataset.partsDone ?? 0) >= 2,
          null, { what: 'two parts stored' });
        await page.click('#queue .upload .pause');
        await page.waitFor(() => document.querySelector('#queue .upload')?.dataset.phase === 'paused',
          null, { what: 'the upload to show paused' });
        const stored = proxy.storedParts(from);
        const seen = proxy.log.length;
        // Nothing to wait for while paused but time: a second in which no part PUT may start.
        await new Promise((r) => { setTimeout(r, 1000); });
        assert.equal(proxy.log.length, seen, 'no part PUT starts while paused');
        assert.equal(await phase(), 'paused');
        await page.click('#queue .upload .pause'); // now labelled Resume
        const row = await waitForDemoRow(page, pause.name);
        await expectStored(s3, bucket, row, pause);
        const after = proxy.log.slice(seen).map((e) => e.part);
        assert.ok(after.every((p) => !stored.includes(p)), `stored parts ${stored} were not sent again (sent ${after})`);
        assert.deepEqual(await page.errors(), []);
      } finally {
        proxy.throttle = 0;
        await page.close();
      }
    });

    it('a part cut mid-body, one answered 503 SlowDown and one with a corrupted byte (refused by the store) are sent again', async () => {
      const { faults } = await testFiles();
      const row = await faultsAreResent({
        engine, server, proxy, s3, bucket, file: faults, query: { checksum: 'crc32c' },
        faults: {
          2: { action: { cutAfter: MiB + 3 }, outcome: 'cut' },
          5: { action: { status: 503, code: 'SlowDown' }, outcome: 503 },
          // Both stores compare the body with the part's CRC32C and answer 400 (docs/stores.md).
          7: { action: { corruptAt: 123_457 }, outcome: 400 },
        },
      });
      assert.equal(await storedChecksum(s3, bucket, row.key), row.checksum,
        'the store kept the composite CRC32C the browser computed');
    });
  });
}
