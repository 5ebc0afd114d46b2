// Uploads of a ReadableStream (`Uploader.upload(stream, options)`) in Chromium, on the embedded
// store and on Garage (tests/lib/engine-scenarios.mjs; S3_DIRECT_STORES picks them). The streams
// are made in the page chunk by chunk (tests/lib/streams.mjs) and hashed as they are made; the
// store's object is read back and compared. Part PUTs pass through the fault proxy.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import {
  fastRetries, STORE_LABELS, selectedStores, startStack, stopSharedStores, storeMissing, until,
} from '../lib/engine-scenarios.mjs';
import { MiB, tempDir } from '../lib/files.mjs';
import { objectSha256 } from '../lib/s3.mjs';
import { installStreams, watchBrowserMemory } from '../lib/streams.mjs';

const GiB = 1024 * MiB;

/** A stream's default part size (the engine's `DEFAULT_STREAM_PART_SIZE`). */
const STREAM_PART_SIZE = 8 * MiB;

/**
 * The memory bound of a stream's upload, over what making the same stream in a page of its own
 * grows the browser by (the producer's garbage, 30–133 MiB for 1 GiB here): the page's renderer
 * (the page and its workers) and the whole browser each by at most concurrency × part size +
 * 64 MiB, the constant of a file's bound (BENCHMARKS.md, "Memory bound"). The whole browser holds
 * to it because each part is sent from its file in the part store (part-store.js): a Blob of the
 * part's bytes per PUT, as before, kept them in the browser process's blob storage until the
 * page's collector freed the Blob, 179–225 MiB in nine runs of this test.
 */
const CONSTANT = 64 * MiB;

after(stopSharedStores);

/** Opens the compress demo (it loads the package as `window.s3direct`) with the stream helpers. */
async function openPage(engine, serverUrl) {
  const page = await engine.newPage();
  await page.goto(`${serverUrl}/compress.html`);
  await page.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the page to load' });
  await page.evaluate(installStreams);
  return page;
}

/** Uploads a stream made in the page (see `window.streams.start`) and resolves to its outcome. */
async function uploadStream(page, args, { timeout = 300_000 } = {}) {
  await page.evaluate((a) => window.streams.start(a), args);
  return page.waitFor(() => window.streams.run.outcome, null, {
    timeout, interval: 250, what: `the upload of ${args.name} to end`,
  });
}

/** Asserts that the upload of `name` succeeded and the store holds exactly the stream's bytes. */
async function expectStreamStored({ s3, bucket }, outcome, name, size) {
  assert.equal(outcome.error, undefined, `${name}: ${outcome.error?.code}: ${outcome.error?.message}`);
  assert.equal(outcome.made, size, `${name}: the stream was read to its end`);
  assert.equal(outcome.result.size, size, `${name}: the result's size`);
  assert.ok(outcome.result.key.endsWith(`/${name}`), `key ${outcome.result.key} keeps the name`);
  const stored = await objectSha256(s3, bucket, outcome.result.key);
  assert.equal(stored.size, size, `${name}: stored size`);
  assert.equal(stored.sha256, outcome.sha256, `${name}: stored SHA-256 equals the stream's`);
}

for (const store of selectedStores()) {
  const skip = storeMissing(store) ?? false;
  describe(`stream uploads on ${STORE_LABELS[store]}`, { skip, timeout: 900_000 }, () => {
    let stack;
    let page;

    before(async () => {
      stack = await startStack(store, 'chromium');
      page = await openPage(stack.engine, stack.server.url);
      assert.deepEqual(await page.evaluate(() => window.streams.selfCheck()), [],
        'the page\'s incremental SHA-256 equals crypto.subtle\'s');
    });

    after(async () => {
      await page?.close();
      await stack?.stop();
    });

    it('a 1 GiB stream made in the page is stored byte for byte, its page and the whole browser each growing by less than concurrency × part size + 64 MiB, its part files removed', async () => {
      const name = `stream-1GiB-${store}.bin`;
      const concurrency = 4;
      // For comparison, in a page (a renderer) of its own: the same bytes made, hashed and
      // dropped, uploaded nowhere.
      const other = await openPage(stack.engine, stack.server.url);
      const producer = watchBrowserMemory();
      await other.evaluate(async () => {
        const reader = window.streams.make(1024 * 1024 * 1024, { seed: 7 }).stream.getReader();
        while (!(await reader.read()).done);
      });
      const alone = producer.stop();
      await other.close();
      // The folder of a part store whose page crashed, which the upload's store removes.
      await page.evaluate(async () => {
        const root = await navigator.storage.getDirectory();
        const parts = await root.getDirectoryHandle('s3-direct-parts', { create: true });
        await (await parts.getDirectoryHandle('crashed', { create: true })).getFileHandle('0', { create: true });
      });
      const memory = watchBrowserMemory();
      let mem;
      const outcome = await uploadStream(page, {
        name, size: GiB, stream: { seed: 7 }, uploader: { concurrency },
      }, { timeout: 600_000 }).finally(() => { mem = memory.stop(); });
      await expectStreamStored(stack, outcome, name, GiB);
      const left = await page.evaluate(async () => {
        const root = await navigator.storage.getDirectory();
        const names = [];
        for await (const name of (await root.getDirectoryHandle('s3-direct-parts')).keys()) names.push(name);
        return names;
      });
      assert.deepEqual(left, [], 'the part store\'s files are removed, and those of a crashed page');
      const held = concurrency * STREAM_PART_SIZE;
      const mib = (n) => `${(n / MiB).toFixed(0)} MiB`;
      const ownPage = (mem.kinds.renderer ?? 0) - (alone.kinds.renderer ?? 0);
      const ownBrowser = mem.growth - alone.growth;
      process.stderr.write(`${STORE_LABELS[store]}: 1 GiB stream, browser PSS ${mib(mem.baseline)} `
        + `+${mib(mem.growth)} at peak (${mem.where}); making the stream alone +${mib(alone.growth)} `
        + `(${alone.where}); the upload's own: page ${mib(ownPage)}, browser ${mib(ownBrowser)} `
        + `(bound ${mib(held + CONSTANT)})\n`);
      assert.ok(ownPage < held + CONSTANT, `the page grew by ${mib(ownPage)} more than making the stream `
        + `alone, more than ${concurrency} × 8 MiB + ${mib(CONSTANT)}`);
      assert.ok(ownBrowser < held + CONSTANT, `the browser grew by ${mib(ownBrowser)} more than making `
        + `the stream alone, more than ${concurrency} × 8 MiB + ${mib(CONSTANT)}`);
    });

    it('the same 1 GiB stream through connection cuts, 503 SlowDown and stalled parts is stored byte for byte', async () => {
      const { proxy } = stack;
      const name = `stream-faults-${store}.bin`;
      // 8 MiB parts, 128 of them: each fault met once, by the first PUT of its part.
      const faults = new Map([
        [2, { cutAfter: 1 * MiB }], [5, { status: 503, code: 'SlowDown' }], [9, { hold: true }],
        [13, { cutAfter: 5 * MiB }], [17, { status: 503, code: 'SlowDown' }], [23, { cutAfter: 1 }],
        [31, { status: 503, code: 'SlowDown' }], [48, { cutAfter: 7 * MiB }], [64, { hold: true }],
        [90, { status: 503, code: 'SlowDown' }], [127, { cutAfter: 2 * MiB }],
      ]);
      const seen = new Set();
      const from = proxy.log.length;
      proxy.decide = ({ part, uploadId }) => {
        const key = `${uploadId} ${part}`;
        if (seen.has(key)) return undefined;
        seen.add(key);
        return faults.get(part);
      };
      try {
        const outcome = await uploadStream(page, {
          name, size: GiB, stream: { seed: 7 }, uploader: { concurrency: 4, stallTimeout: 1500, ...fastRetries },
        }, { timeout: 600_000 });
        await expectStreamStored(stack, outcome, name, GiB);
        const log = proxy.log.slice(from);
        for (const [part, fault] of faults) {
          assert.ok(log.filter((e) => e.part === part).length >= 2, `part ${part} met ${JSON.stringify(fault)} and was sent again`);
        }
      } finally {
        proxy.decide = () => undefined;
        proxy.dropHeld();
      }
    });

    it('cancelling half-way cancels the stream and leaves no upload in the store', async () => {
      const { proxy } = stack;
      const name = `stream-cancel-${store}.bin`;
      // Parts past the sixth are held (never answered), so "half-way" is a fact, not a race.
      proxy.decide = ({ part }) => (part <= 6 ? undefined : { hold: true });
      try {
        await page.evaluate((a) => window.streams.start(a), {
          name, size: 128 * MiB, uploader: { concurrency: 4 },
        });
        await page.waitFor(() => (window.streams.run.handle.progress?.partsDone ?? 0) >= 6, null, { what: 'six parts stored' });
        await until(() => proxy.held.length > 0, 'a part past the sixth in flight');
        assert.notDeepEqual(await stack.leftovers(name), [], 'before the cancel the store holds the upload (the check below can see one)');
        await page.evaluate(() => window.streams.run.handle.cancel());
        const outcome = await page.waitFor(() => window.streams.run.outcome, null, { what: 'the upload to end' });
        assert.equal(outcome.error?.code, 'aborted', JSON.stringify(outcome.error));
        assert.equal(outcome.cancelled, true, 'the stream\'s cancel ran');
        assert.ok(outcome.made < 128 * MiB, `the stream was not read to its end (${outcome.made} bytes made)`);
        assert.deepEqual(await stack.leftovers(name), [], 'no multipart upload, part or object remains');
      } finally {
        proxy.decide = () => undefined;
        proxy.dropHeld();
      }
    });

    // A stream's part goes to the checksum worker as its file in the part store, or, where the
    // part is kept in memory (no OPFS: here hidden from the page), as its bytes, transferred and
    // given back with the answer (web/stream.rs). Here the first part's request is swallowed on
    // its way to the worker, as if the worker never answered: past the deadline a new worker takes
    // over, and the engine's second ask is answered by the same request, the part still the page's.
    for (const kept of ['in the part store', 'in memory']) {
      it(`a stream's checksum the worker never answers is asked of a new worker, and the stream is stored byte for byte (parts ${kept})`, async () => {
        const name = `stream-silent-worker-${kept.split(' ').pop()}-${store}.bin`;
        await page.evaluate((hideStore) => {
          const Native = window.Worker;
          const getDirectory = Object.getOwnPropertyDescriptor(StorageManager.prototype, 'getDirectory');
          if (hideStore) Object.defineProperty(StorageManager.prototype, 'getDirectory', { value: undefined, configurable: true });
          window.swallowed = undefined;
          window.Worker = class extends Native {
            postMessage(message, ...rest) {
              if (window.swallowed === undefined && message && typeof message === 'object' && 'algorithm' in message) {
                // The part's file, or its bytes (a Uint8Array).
                window.swallowed = [message.blob?.constructor.name, message.blob?.size ?? message.blob?.length];
                return;
              }
              super.postMessage(message, ...rest);
            }
          };
          window.restoreWorker = () => {
            window.Worker = Native;
            Object.defineProperty(StorageManager.prototype, 'getDirectory', getDirectory);
          };
        }, kept === 'in memory');
        try {
          const outcome = await uploadStream(page, {
            name, size: 20 * MiB + 5, stream: { seed: 5 },
            uploader: { concurrency: 2, checksum: 'sha256', stallTimeout: 2000, partSize: 5 * MiB },
          });
          await expectStreamStored(stack, outcome, name, 20 * MiB + 5);
          const swallowed = kept === 'in memory' ? ['Uint8Array', 5 * MiB] : ['File', 5 * MiB];
          assert.deepEqual(await page.evaluate(() => window.swallowed), swallowed, 'a part\'s request was swallowed');
        } finally {
          await page.evaluate(() => window.restoreWorker());
        }
      });
    }

    it('a stream that errors half-way rejects with stream_failed and leaves no upload', async () => {
      const name = `stream-error-${store}.bin`;
      const outcome = await uploadStream(page, {
        name, size: 64 * MiB, stream: { failAt: 30 * MiB }, uploader: { concurrency: 2 },
      });
      assert.equal(outcome.error?.code, 'stream_failed', JSON.stringify(outcome.error));
      assert.match(outcome.error.message, /the producer broke after/, 'the message says what the stream said');
      assert.deepEqual(await stack.leftovers(name), [], 'no multipart upload, part or object remains');
    });

    it('a stream without a filename, a locked stream, a bad expectedSize and a string are refused with invalid_options', async () => {
      const refused = await page.evaluate(async () => {
        const uploader = new window.s3direct.Uploader();
        const code = (input, options) => uploader.upload(input, options).then(() => 'uploaded', (e) => `${e.code}: ${e.message}`);
        const locked = new ReadableStream();
        locked.getReader();
        const unread = new ReadableStream();
        return [
          await code(new ReadableStream()),
          await code(locked, { filename: 'locked.bin' }),
          await code(unread, { filename: 'bad.bin', expectedSize: -1 }),
          unread.locked,
          await code('not a file', { filename: 'a.txt' }),
        ];
      });
      assert.match(refused[0], /^invalid_options: .*pass upload options\.filename/);
      assert.match(refused[1], /^invalid_options: the stream is locked/);
      assert.match(refused[2], /^invalid_options: upload options\.expectedSize must be a whole number/);
      assert.equal(refused[3], false, 'a refused option leaves the stream unread');
      assert.match(refused[4], /^invalid_options: the file to upload must be a File, a Blob or a ReadableStream/);
    });

    it('a zero-byte and a 1-byte stream are stored, each as one PUT', async () => {
      const { proxy } = stack;
      proxy.decideObject = () => undefined; // logs whole-object PUTs
      try {
        for (const size of [0, 1]) {
          const name = `stream-${size}-bytes-${store}.bin`;
          const [parts, objects] = [proxy.log.length, proxy.objects.length];
          const outcome = await uploadStream(page, { name, size });
          await expectStreamStored(stack, outcome, name, size);
          assert.equal(proxy.objects.length - objects, 1, `${size} bytes: one whole-object PUT`);
          assert.equal(proxy.log.length - parts, 0, `${size} bytes: no part PUT`);
        }
      } finally {
        proxy.decideObject = null;
      }
    });

    it('a stream three times its expectedSize completes; progress totals are null until it ends and reached only at completion', async () => {
      const name = `stream-3x-${store}.bin`;
      const size = 48 * MiB;
      const outcome = await uploadStream(page, {
        name, size, stream: { chunk: 65_537 }, options: { expectedSize: 16 * MiB },
      });
      await expectStreamStored(stack, outcome, name, size);
      const { progress } = outcome;
      assert.ok(progress.some(([sent, total]) => total === null && sent > 0), 'bytesTotal is null while bytes go out');
      const known = progress.findIndex(([, total]) => total !== null);
      assert.ok(known > 0, 'the total becomes known');
      assert.ok(progress.slice(0, known).every(([, total, parts]) => total === null && parts === null),
        'bytesTotal and partsTotal are null together until the end');
      assert.ok(progress.slice(known).every(([, total, parts]) => total === size && parts === 6),
        'once known, the totals are the stream\'s: 6 parts of 8 MiB');
      for (const [sent, total, , phase] of progress) {
        if (sent === total) assert.equal(phase, 'done', 'the whole total is reported only once complete');
      }
      assert.deepEqual(progress.at(-1).slice(0, 4), [size, size, 6, 'done']);
    });

    it('a paused stream upload resumes and completes byte for byte, the stream read no further ahead than the parts it may hold', async () => {
      const name = `stream-pause-${store}.bin`;
      const size = 96 * MiB;
      const concurrency = 2;
      const chunk = 999_983;
      await page.evaluate((a) => window.streams.start(a), {
        name, size, stream: { chunk }, uploader: { concurrency },
      });
      await page.waitFor(() => (window.streams.run.handle.progress?.partsDone ?? 0) >= 2, null, { what: 'two parts stored' });
      await page.evaluate(() => window.streams.run.handle.pause());
      await page.waitFor(() => window.streams.run.progress.some(([, , , phase]) => phase === 'paused'), null, { what: 'the upload to report paused' });
      await page.evaluate(() => window.streams.run.handle.resume());
      const outcome = await page.waitFor(() => window.streams.run.outcome, null, { timeout: 300_000, what: 'the upload to end' });
      await expectStreamStored(stack, outcome, name, size);
      // Held: at most `concurrency` parts cut and not stored, plus the one being filled (and the
      // rest of its last chunk); one part more for a report that trails a part's release.
      const ahead = Math.max(...outcome.progress.map(([, , , , confirmed, made]) => made - confirmed));
      const most = (concurrency + 2) * STREAM_PART_SIZE + chunk;
      assert.ok(ahead <= most, `the stream was read ${ahead} bytes ahead of the stored parts (at most ${most})`);
    });

    it('the compress demo gzips a file while uploading it; the object gunzips to the file', async () => {
      const dir = await tempDir();
      const name = `compress-${store}.txt`;
      const file = path.join(dir, name);
      // 40 MiB of hexadecimal digits: gzip halves it, to a few parts of 8 MiB.
      const text = randomBytes(20 * MiB).toString('hex');
      await writeFile(file, text);
      const original = createHash('sha256').update(await readFile(file)).digest('hex');
      const demo = await stack.engine.newPage();
      try {
        await demo.goto(`${stack.server.url}/compress.html`);
        await demo.waitFor(() => document.body.dataset.ready === 'true', null, { what: 'the page to load' });
        await demo.setFiles('#picker', [file]);
        const state = await demo.waitFor(() => (['done', 'error', 'cancelled'].includes(document.body.dataset.state)
          ? { state: document.body.dataset.state, key: document.body.dataset.key, status: document.querySelector('#status').textContent }
          : null), null, { timeout: 120_000, what: 'the upload to end' });
        assert.equal(state.state, 'done', state.status);
        assert.ok(state.key.endsWith(`/${name}.gz`), `key ${state.key} is the file's name with .gz`);
        const { Body, ContentType } = await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: state.key }));
        assert.equal(ContentType, 'application/gzip');
        const gz = Buffer.from(await Body.transformToByteArray());
        assert.ok(gz.length > STREAM_PART_SIZE, `the gzip (${gz.length} bytes) took more than one part`);
        assert.equal(createHash('sha256').update(gunzipSync(gz)).digest('hex'), original, 'the object gunzips to the file');
        assert.deepEqual(await demo.errors(), []);
      } finally {
        await demo.close();
      }
    });
  });
}
