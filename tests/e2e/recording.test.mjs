// Recordings uploaded while they are made, through the spool of `s3-direct/spool`, driven by the
// demo page web/record.html in headless Chromium: a canvas animation recorded by MediaRecorder
// (noisy frames at a high bitrate, so 10 s span several 5 MiB parts), on the embedded store
// behind the fault-injecting proxy (which counts part PUTs and holds some to make a "half-way").
// The stored objects are checked with ffprobe and ffmpeg (Debian `ffmpeg`, scripts/setup.sh).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { chromium } from 'playwright-core';
import { chromiumArgs } from '../lib/browser.mjs';
import { MiB, tempDir } from '../lib/files.mjs';
import { startProxiedStack } from '../lib/proxied-stack.mjs';
import { resumeRecords } from '../lib/resilience.mjs';
import { repoRoot } from '../lib/server.mjs';

const bucket = 's3-direct';
const seconds = 10;
// What VP8 makes of 640x360 noise at 30 fps when asked for 30 Mbit/s: about 14 Mbit/s here,
// 17 MB in 10 s, so four 5 MiB parts.
const page = { noise: 1, bitrate: 30_000_000, partSize: 5 };

/** The object's bytes. */
async function objectBytes(s3, key) {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await Body.transformToByteArray());
}

/**
 * What ffprobe and ffmpeg make of a WebM: its video codec, its length in seconds from its last
 * packet's timestamp (MediaRecorder writes no duration into the header), and the errors ffprobe
 * and ffmpeg report reading it and decoding every frame (lines of text; none for a whole file).
 */
async function webm(bytes) {
  const file = path.join(await tempDir('s3-direct-recording-'), 'object.webm');
  await writeFile(file, bytes);
  const run = (tool, args) => {
    const out = spawnSync(tool, ['-v', 'error', ...args], { encoding: 'utf8' });
    if (out.error?.code === 'ENOENT') throw new Error(`${tool} is missing: install Debian's ffmpeg (scripts/setup.sh test does)`);
    assert.equal(out.status, 0, `${tool} failed: ${out.stderr}`);
    return out;
  };
  const probe = run('ffprobe', ['-show_entries', 'stream=codec_name:packet=pts_time', '-of', 'json', file]);
  const { streams, packets } = JSON.parse(probe.stdout);
  const decode = run('ffmpeg', ['-i', file, '-f', 'null', '-']);
  const times = packets.map((p) => Number(p.pts_time)).filter(Number.isFinite);
  return {
    codec: streams[0]?.codec_name,
    seconds: Math.max(...times),
    packets: times.length,
    errors: `${probe.stderr}${decode.stderr}`.split('\n').filter(Boolean),
  };
}

/**
 * The embedded store's incomplete uploads of spool `id`'s recording (named `{id}.webm`), as
 * `s3-direct uploads list` reads them.
 */
function incompleteUploads(server, id) {
  const binary = process.env.S3_DIRECT_BIN ?? path.join(repoRoot, 'target/debug/s3-direct');
  const { uploads } = JSON.parse(execFileSync(binary, ['uploads', 'list', '--data-dir', server.dataDir, '--json'], { encoding: 'utf8' }));
  return uploads.filter((u) => u.key.endsWith(`/${id}.webm`));
}

/** Opens web/record.html in `context` with the test's query parameters. */
async function openRecorder(context, server, query = {}) {
  const tab = await context.newPage();
  const errors = [];
  tab.on('pageerror', (err) => errors.push(err));
  tab.pageErrors = errors;
  await tab.goto(`${server.url}/record.html?${new URLSearchParams({ ...page, ...query })}`);
  await tab.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  return tab;
}

/** The newest recording's row, once `check(row dataset)` holds (checked in the page). */
async function rowWhen(tab, check, what, timeout = 120_000) {
  const handle = await tab.waitForFunction((source) => {
    const row = document.querySelector('#queue .upload');
    // eslint-disable-next-line no-new-func
    return row && new Function('d', `return (${source})(d)`)(row.dataset) ? { ...row.dataset } : null;
  }, check.toString(), { timeout, polling: 50 }).catch((e) => {
    throw new Error(`waiting for ${what}: ${e.message}`);
  });
  return handle.jsonValue();
}

/** Every file in the page's OPFS spool folder (none when it does not exist). */
function spoolFiles(tab) {
  return tab.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const names = [];
    try {
      const dir = await root.getDirectoryHandle('s3-direct-spool');
      for await (const name of dir.keys()) names.push(name);
    } catch (e) {
      if (e.name !== 'NotFoundError') throw e;
    }
    return names;
  });
}

describe('recordings uploaded while recording, through an OPFS spool (Chromium)', () => {
  let stack;

  before(async () => {
    stack = await startProxiedStack();
  });

  after(() => stack?.stop());

  it(`a ${seconds}-second canvas recording is stored, while recording, as a playable WebM of that length`, async (t) => {
    const { browser, proxy, server, s3 } = stack;
    const context = await browser.newContext();
    try {
      const tab = await openRecorder(context, server, { seconds });
      const before = proxy.log.length;
      await tab.click('#record-canvas');
      const early = await rowWhen(tab, (d) => Number(d.partsDone ?? 0) >= 1 || d.state !== 'recording', 'a part stored');
      assert.equal(early.state, 'recording', 'a part was stored while the recording went on');
      assert.equal(await tab.isEnabled('#stop'), true, 'Stop is offered while recording');
      const row = await rowWhen(tab, (d) => ['done', 'error', 'cancelled'].includes(d.state), 'the upload to end');
      assert.equal(row.state, 'done', `the upload ended ${row.state}: ${row.code ?? ''}`);

      const bytes = await objectBytes(s3, row.key);
      assert.equal(bytes.length, Number(row.recorded), 'the object holds every recorded byte');
      const parts = new Set(proxy.log.slice(before).map((e) => e.part));
      assert.ok(parts.size >= 3, `the recording spans several parts (${parts.size})`);
      const video = await webm(bytes);
      t.diagnostic(`${(bytes.length / MiB).toFixed(1)} MiB in ${parts.size} parts, ${video.packets} packets, ${video.seconds} s`);
      assert.match(video.codec, /^vp[89]$/);
      assert.deepEqual(video.errors, [], 'ffprobe reads and ffmpeg decodes it without an error');
      assert.ok(Math.abs(video.seconds - seconds) <= 1.5, `the recording lasts ${video.seconds} s`);
      assert.deepEqual(await spoolFiles(tab), [], 'the spool is gone');
      assert.deepEqual(tab.pageErrors, []);
    } finally {
      await context.close();
    }
  });

  it('after a reload half-way, the spooled recording resumes, sending only the parts the store lacks', async (t) => {
    const { browser, proxy, server, s3 } = stack;
    const context = await browser.newContext();
    // Part 1 is stored; later parts are held in flight until the reload.
    proxy.decide = ({ part }) => (part > 1 ? { hold: true } : undefined);
    try {
      const tab = await openRecorder(context, server);
      await tab.click('#record-canvas');
      const spool = (await rowWhen(tab, (d) => Number(d.partsDone ?? 0) >= 1, 'part 1 stored')).spool;
      // The record is written as parts are stored (batched); wait until it holds part 1, and
      // until the recording holds three parts' worth, so there is something left to send.
      for (;;) {
        const records = await resumeRecords(tab);
        if (records.some((r) => r.parts.includes(1))) break;
        await tab.waitForTimeout(50);
      }
      await rowWhen(tab, (d) => Number(d.recorded ?? 0) >= 12 * 1024 * 1024, '12 MiB recorded');

      proxy.decide = () => undefined;
      await tab.reload();
      proxy.dropHeld();
      await tab.waitForSelector('body[data-ready="true"]');
      await tab.waitForSelector(`#interrupted li[data-spool="${spool}"] .resume`);
      const spooled = await tab.evaluate(async (id) => {
        const s = (await window.spool.spooledUploads()).find((u) => u.id === id);
        const bytes = await (await s.file()).arrayBuffer();
        const hex = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
          .map((b) => b.toString(16).padStart(2, '0')).join('');
        return { size: s.size, sha256: hex, filename: s.filename };
      }, spool);
      assert.ok(spooled.size >= 12 * MiB, `the spool kept what was recorded (${spooled.size} bytes)`);

      const before = proxy.log.length;
      await tab.click(`#interrupted li[data-spool="${spool}"] .resume`);
      const row = await rowWhen(tab, (d) => ['done', 'error', 'cancelled'].includes(d.state), 'the resumed upload to end');
      assert.equal(row.state, 'done', `the resumed upload ended ${row.state}: ${row.code ?? ''}`);

      const count = Math.ceil(spooled.size / (5 * MiB));
      const sent = proxy.log.slice(before).map((e) => e.part).sort((a, b) => a - b);
      assert.deepEqual(sent, Array.from({ length: count - 1 }, (_, i) => i + 2), 'parts 2.. sent once each, part 1 not again');
      const bytes = await objectBytes(s3, row.key);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), spooled.sha256, 'the object is the spool');
      // The reload cut the recorder mid-cluster: the file ends early, and nothing else is wrong.
      const video = await webm(bytes);
      t.diagnostic(`${(spooled.size / MiB).toFixed(1)} MiB spooled, parts ${sent} sent after the reload, ${video.seconds} s`);
      assert.match(video.codec, /^vp[89]$/);
      assert.ok(video.seconds > 2, `the recording up to the reload is playable (${video.seconds} s)`);
      const unexpected = video.errors.filter((line) => !/File ended prematurely/.test(line));
      assert.deepEqual(unexpected, [], 'no error but the early end');
      assert.deepEqual(await spoolFiles(tab), [], 'the spool is gone');
      assert.deepEqual(await resumeRecords(tab), [], 'no resume record is left');
      assert.deepEqual(tab.pageErrors, []);
    } finally {
      proxy.decide = () => undefined;
      proxy.dropHeld();
      await context.close();
    }
  });

  it('an upload that fails while recording keeps its upload and spools the rest; resuming sends only the missing parts', async (t) => {
    const { browser, proxy, server, s3 } = stack;
    const context = await browser.newContext();
    const before = proxy.log.length;
    // Part 2 is refused for good (a 400 the client does not retry): the upload fails mid-recording.
    proxy.decide = ({ part }) => (part === 2 ? { status: 400, code: 'InvalidArgument' } : undefined);
    try {
      const tab = await openRecorder(context, server, { seconds });
      await tab.click('#record-canvas');
      const failed = await rowWhen(tab, (d) => d.state !== 'recording', 'the upload to fail');
      assert.equal(failed.state, 'error', `the upload ended ${failed.state} while recording`);
      assert.equal(incompleteUploads(server, failed.spool).length, 1, 'the multipart upload is kept');
      proxy.decide = () => undefined;
      const stored = new Set(proxy.log.slice(before).filter((e) => e.outcome === 200).map((e) => e.part));
      assert.ok(stored.has(1), 'part 1 was stored before the failure');

      // Once the recorder stops, the spool holds the whole recording and the page offers it.
      const spool = failed.spool;
      await tab.waitForSelector(`#interrupted li[data-spool="${spool}"] .resume`, { timeout: 60_000 });
      const recorded = Number(await tab.evaluate(() => document.querySelector('#queue .upload').dataset.recorded));
      const spooled = await tab.evaluate(async (id) => (await window.spool.spooledUploads()).find((u) => u.id === id).size, spool);
      assert.equal(spooled, recorded, 'the spool kept every recorded byte after the upload failed');

      const resumedFrom = proxy.log.length;
      await tab.click(`#interrupted li[data-spool="${spool}"] .resume`);
      const row = await rowWhen(tab, (d) => ['done', 'error', 'cancelled'].includes(d.state), 'the resumed upload to end');
      assert.equal(row.state, 'done', `the resumed upload ended ${row.state}: ${row.code ?? ''}`);
      const count = Math.ceil(spooled / (5 * MiB));
      const sent = proxy.log.slice(resumedFrom).map((e) => e.part).sort((a, b) => a - b);
      const missing = Array.from({ length: count }, (_, i) => i + 1).filter((p) => !stored.has(p));
      assert.deepEqual(sent, missing, 'only the parts the store lacked were sent, once each');
      const bytes = await objectBytes(s3, row.key);
      assert.equal(bytes.length, recorded, 'the object is the whole recording');
      const video = await webm(bytes);
      t.diagnostic(`${(recorded / MiB).toFixed(1)} MiB recorded, parts ${[...stored]} stored before the failure, ${sent} after, ${video.seconds} s`);
      assert.deepEqual(video.errors, [], 'ffprobe reads and ffmpeg decodes it without an error');
      assert.ok(Math.abs(video.seconds - seconds) <= 1.5, `the recording lasts ${video.seconds} s`);
      assert.deepEqual(await spoolFiles(tab), [], 'the spool is gone');
      assert.deepEqual(incompleteUploads(server, spool), [], 'no multipart upload is left');
      assert.deepEqual(tab.pageErrors, []);
    } finally {
      proxy.decide = () => undefined;
      await context.close();
    }
  });

  it('a spool another tab is writing is not offered; once that tab is gone, it is', async () => {
    const { browser, server } = stack;
    const context = await browser.newContext();
    try {
      // A low bitrate: no part is cut, so no multipart upload is left behind by the closed tab.
      const recording = await openRecorder(context, server, { noise: 0, bitrate: 250_000 });
      await recording.click('#record-canvas');
      const { spool } = await rowWhen(recording, (d) => Number(d.recorded ?? 0) > 0, 'bytes recorded');
      const other = await openRecorder(context, server);
      const listed = () => other.evaluate(async () => (await window.spool.spooledUploads()).map((s) => s.id));
      assert.deepEqual(await listed(), [], 'the live spool is not listed in another tab');
      assert.equal(await other.isHidden('#interrupted-section'), true);
      await recording.close();
      // The closed tab's lock goes with it; the spool is then there to resume.
      await other.waitForFunction(async (id) => (await window.spool.spooledUploads()).some((s) => s.id === id), spool, { polling: 100, timeout: 30_000 });
      await other.reload();
      await other.waitForSelector(`#interrupted li[data-spool="${spool}"] .discard`);
      await other.click(`#interrupted li[data-spool="${spool}"] .discard`);
      await other.waitForSelector('#interrupted-section', { state: 'hidden' });
      assert.deepEqual(await spoolFiles(other), [], 'discarding removed the spool');
    } finally {
      await context.close();
    }
  });

  it('a stream that runs ahead of its upload waits in the spool, not in memory', async (t) => {
    const { server } = stack;
    // A browser of its own that can collect garbage on demand and report its heap exactly.
    const measuring = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [...chromiumArgs, '--js-flags=--expose-gc', '--enable-precise-memory-info'],
    });
    try {
      const tab = await openRecorder(await measuring.newContext(), server);
      const grown = await tab.evaluate(async () => {
        const heap = async () => {
          window.gc();
          await new Promise((r) => { setTimeout(r, 0); });
          window.gc();
          return performance.memory.usedJSHeapSize;
        };
        let source;
        const stream = new ReadableStream({ start(c) { source = c; } });
        // An upload that never reads: everything the stream gives is ahead of it.
        let taken;
        const stalled = { upload(body) { taken = body.getReader(); return new Promise(() => {}); } };
        window.spool.uploadSpooled(stalled, stream, { id: 'ahead', filename: 'ahead.bin' });
        const before = await heap();
        for (let i = 0; i < 256; i += 1) source.enqueue(new Uint8Array(256 * 1024).fill(i));
        const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('s3-direct-spool', { create: true });
        for (;;) {
          const file = await (await dir.getFileHandle('ahead.bin', { create: true })).getFile();
          if (file.size === 64 * 1024 * 1024 && taken) break;
          await new Promise((r) => { setTimeout(r, 50); });
        }
        return (await heap()) - before;
      });
      t.diagnostic(`64 MiB spooled ahead of the upload; the JS heap grew by ${(grown / MiB).toFixed(1)} MiB`);
      assert.ok(grown < 8 * MiB, `the heap grew by ${(grown / MiB).toFixed(1)} MiB`);
    } finally {
      await measuring.close();
    }
  });

  it('an upload refused before it begins leaves no spool, and never writes over an earlier one', async () => {
    const { browser, server } = stack;
    const context = await browser.newContext();
    try {
      const tab = await openRecorder(context, server);
      const outcomes = await tab.evaluate(async () => {
        const uploader = new window.s3direct.Uploader({ endpoint: '/s3' });
        const bytes = () => new ReadableStream({ start(c) { c.enqueue(new Uint8Array(10)); c.close(); } });
        const outcome = (promise) => promise.then(() => 'done', (e) => e.code ?? e.message);
        return [
          await outcome(window.spool.uploadSpooled(uploader, bytes(), {})),
          await outcome(window.spool.uploadSpooled(uploader, bytes(), { filename: 'a.bin', expectedSize: -1 })),
        ];
      });
      assert.match(outcomes[0], /needs options\.filename/);
      assert.equal(outcomes[1], 'invalid_options');
      assert.deepEqual(await spoolFiles(tab), [], 'no spool is left');

      // A spool an earlier page left (written here as the worker writes one) stays as it was.
      const again = await tab.evaluate(async () => {
        const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('s3-direct-spool');
        const put = async (name, text) => {
          const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
          await w.write(text);
          await w.close();
        };
        await put('earlier.json', JSON.stringify({ id: 'earlier', filename: 'earlier.webm', created: 1 }));
        await put('earlier.bin', 'earlier bytes');
        const uploader = new window.s3direct.Uploader({ endpoint: '/s3' });
        const refused = await window.spool.uploadSpooled(uploader, new ReadableStream(), { id: 'earlier', filename: 'b.bin' })
          .then(() => 'done', (e) => e.message);
        const [left] = await window.spool.spooledUploads();
        return { refused, left: { id: left.id, size: left.size, text: await (await left.file()).text() } };
      });
      assert.match(again.refused, /holds 13 bytes of an earlier stream/);
      assert.deepEqual(again.left, { id: 'earlier', size: 13, text: 'earlier bytes' });
    } finally {
      await context.close();
    }
  });

  it('cancelling a recording removes its spool and leaves no multipart upload', async () => {
    const { browser, server } = stack;
    const context = await browser.newContext();
    try {
      const tab = await openRecorder(context, server);
      await tab.click('#record-canvas');
      const { spool } = await rowWhen(tab, (d) => Number(d.partsDone ?? 0) >= 1, 'a part stored');
      assert.equal(incompleteUploads(server, spool).length, 1, 'the recording\'s multipart upload exists');
      await tab.click('#cancel');
      const row = await rowWhen(tab, (d) => ['done', 'error', 'cancelled'].includes(d.state), 'the upload to end');
      assert.equal(row.state, 'cancelled');
      assert.deepEqual(await spoolFiles(tab), [], 'the spool is gone');
      assert.deepEqual(await tab.evaluate(async () => (await window.spool.spooledUploads()).length), 0);
      assert.deepEqual(incompleteUploads(server, spool), [], 'no multipart upload is left');
      assert.deepEqual(await resumeRecords(tab), [], 'no resume record is left');
      assert.deepEqual(tab.pageErrors, []);
    } finally {
      await context.close();
    }
  });
});
