// The <s3-direct-upload> element in a plain HTML form (web/form.html), on the embedded store:
// the form submits the receipts of finished uploads (their keys with form-value="key"), a cancelled upload leaves nothing behind, the
// element works with the keyboard alone, and a screenshot of each state is written for people to
// look at. Part PUTs are held in the browser's network layer to create "half-way" states.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { randomFile, tempDir, MiB } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from '../lib/server.mjs';
import { installStreams } from '../lib/streams.mjs';

/** Where the screenshots go (git-ignored); printed by the test that writes them. */
const artifacts = path.join(repoRoot, 'tests/artifacts/widget');

const EVENTS = ['upload-start', 'upload-progress', 'upload-complete', 'upload-error', 'upload-cancel', 'queue-complete'];

/** Every file below `dir`, as paths relative to it. */
async function walk(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/**
 * Opens the form page with the element's part size set to 5 MiB, recording every event the
 * element dispatches (as seen by the document: they bubble out of the shadow root).
 */
async function openForm(browser, server) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  // Every path the page requested: the widget's folder module must not be one without a folder.
  page.requested = [];
  page.on('request', (r) => page.requested.push(new URL(r.url()).pathname));
  // Playwright intercepts file choosers only once a listener exists, and turning that on is a
  // round trip to the browser: a key press sent in the same breath as waitForEvent('filechooser')
  // could open an uncaught chooser. Listening from the start makes every chooser an event.
  page.on('filechooser', () => {});
  await page.addInitScript((types) => {
    window.widgetEvents = [];
    for (const type of types) {
      document.addEventListener(type, (e) => {
        const detail = JSON.parse(JSON.stringify(e.detail, (k, v) => (v instanceof File ? undefined : v)));
        window.widgetEvents.push({ type, detail, composed: e.composed, bubbles: e.bubbles });
      });
    }
  }, EVENTS);
  await page.goto(`${server.url}/form.html`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  await page.evaluate(() => document.querySelector('s3-direct-upload').setAttribute('part-size', '5MiB'));
  page.pageErrors = errors;
  return page;
}

/**
 * Holds the PUTs of `fileName`'s parts past the first `pass` in the network layer, never
 * answered, until `release()`.
 */
async function holdParts(page, fileName, { pass = 0 } = {}) {
  const held = [];
  let passed = 0;
  let someHeld;
  const firstHeld = new Promise((resolve) => { someHeld = resolve; });
  await page.route((url) => url.pathname.endsWith(`/${fileName}`), (route) => {
    const request = route.request();
    if (request.method() !== 'PUT') return route.continue();
    const part = Number(new URL(request.url()).searchParams.get('partNumber') ?? 1);
    if (part <= pass) {
      passed += 1;
      return route.continue();
    }
    held.push(route);
    someHeld();
    return undefined;
  });
  return {
    /** Resolves once a part is held; rejects after 60 s so a test cannot hang on it. */
    firstHeld: Promise.race([firstHeld, new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error(`no part PUT of ${fileName} arrived in 60 s`)), 60_000).unref();
    })]),
    held: () => held.length,
    passed: () => passed,
    release: () => Promise.allSettled(held.map((r) => r.abort())),
  };
}

/** The element's row for `name` (a snapshot from its `items` property). */
function item(page, name) {
  return page.evaluate((n) => document.querySelector('s3-direct-upload').items.find((i) => i.name === n), name);
}

/** Waits until `predicate(row)` holds for the row of `name`; returns the row. */
async function waitForItem(page, name, predicate, { timeout = 60_000 } = {}) {
  const handle = await page.waitForFunction(([n, body]) => {
    const row = document.querySelector('s3-direct-upload').items.find((i) => i.name === n);
    // eslint-disable-next-line no-new-func
    return row && new Function('row', `return (${body})(row)`)(row) ? row : null;
  }, [name, predicate.toString()], { timeout, polling: 50 });
  return handle.jsonValue();
}

/** What has keyboard focus, through shadow roots: its accessible label or text, and its part. */
function focused(page) {
  return page.evaluate(() => {
    let el = document.activeElement;
    while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
    const style = getComputedStyle(el);
    return {
      label: el.getAttribute('aria-label') ?? el.textContent.trim().replace(/\s+/g, ' '),
      part: el.getAttribute('part'),
      tag: el.localName,
      outline: `${style.outlineStyle} ${style.outlineWidth}`,
    };
  });
}

describe('the <s3-direct-upload> widget in a plain form', () => {
  let browser;
  let server;
  let s3;
  const bucket = 's3-direct';

  before(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("two files, one cancelled while uploading: the form submits the other's receipt, byte for byte", async () => {
    const dir = await tempDir();
    const [keep, cancel] = await Promise.all([
      randomFile(dir, 'keep-3MiB.bin', 3 * MiB + 17),
      randomFile(dir, 'cancel-me-16MiB.bin', 16 * MiB),
    ]);
    const page = await openForm(browser, server);
    const hold = await holdParts(page, cancel.name, { pass: 1 });
    try {
      assert.equal(await page.evaluate(() => document.querySelector('s3-direct-upload').validity.valueMissing), true,
        'required and empty, the element is invalid');
      await page.fill('#title', 'Harbour at dawn');
      const [chooser] = await Promise.all([
        page.waitForEvent('filechooser'),
        page.getByRole('button', { name: /choose files/ }).click(),
      ]);
      assert.ok(chooser.isMultiple(), 'the picker takes several files');
      await chooser.setFiles([keep.path, cancel.path]);

      await waitForItem(page, keep.name, (row) => row.state === 'done');
      // Part 1 of the big file is stored and a later part is in flight: cancelling now is mid-upload.
      await waitForItem(page, cancel.name, (row) => row.state === 'uploading' && row.progress?.partsDone >= 1);
      await hold.firstHeld; // a later part of the big file is in flight

      // Half-done, the form must not submit: the element is invalid and says why.
      const invalid = page.evaluate(() => new Promise((resolve) => {
        const el = document.querySelector('s3-direct-upload');
        el.addEventListener('invalid', () => resolve(el.validationMessage), { once: true });
      }));
      await page.click('#submit');
      assert.match(await invalid, /wait until the uploads finish/i);
      assert.equal(new URL(page.url()).search, '', 'the form was not submitted');

      const summary = page.locator('s3-direct-upload [part="summary"]');
      assert.match(await summary.textContent(), /^1 of 2 uploaded · \d+ %/);

      await page.getByRole('button', { name: `Cancel upload of ${cancel.name}` }).click();
      await waitForItem(page, cancel.name, (row) => row.state === 'cancelled');
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').state === 'done');
      assert.equal(hold.passed(), 1, 'only the first part of the cancelled file reached the store');
      assert.equal(await summary.textContent(), '1 of 1 uploaded', 'a cancelled file does not count');

      const events = await page.evaluate(() => window.widgetEvents);
      for (const e of events) assert.ok(e.bubbles && e.composed, `${e.type} bubbles out of the shadow root`);
      const complete = events.filter((e) => e.type === 'upload-complete');
      assert.equal(complete.length, 1);
      const { key, receipt } = complete[0].detail;
      assert.equal(typeof receipt, 'string', 'a small file has a receipt too');
      const claims = JSON.parse(Buffer.from(receipt.split('.')[1], 'base64url'));
      assert.deepEqual([claims.key, claims.size], [key, keep.size]);
      assert.equal(complete[0].detail.fileName, keep.name);
      assert.equal(complete[0].detail.size, keep.size);
      assert.equal(complete[0].detail.bucket, bucket);
      assert.ok(key.endsWith(`/${keep.name}`), `key ${key} keeps the file name`);
      assert.ok(complete[0].detail.location.endsWith(`/${bucket}/${key}`), `location ${complete[0].detail.location}`);
      assert.deepEqual(events.filter((e) => e.type === 'upload-cancel').map((e) => e.detail.name), [cancel.name]);
      assert.deepEqual(events.filter((e) => e.type === 'upload-start').map((e) => e.detail.name).sort(),
        [cancel.name, keep.name].sort());
      assert.ok(events.some((e) => e.type === 'upload-progress' && e.detail.name === cancel.name && e.detail.bytesSent > 0));
      assert.deepEqual(events.filter((e) => e.type === 'queue-complete').map((e) => e.detail),
        [{ keys: [key], done: 1, failed: 0, cancelled: 1 }]);
      assert.deepEqual(events.filter((e) => e.type === 'upload-error'), []);

      // Submit: the browser serialises the form into the page address; the page lists it.
      await Promise.all([page.waitForURL(/\?/), page.click('#submit')]);
      await page.waitForSelector('body[data-ready="true"]');
      const sent = await page.$$eval('#submitted tr[data-field]', (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]));
      assert.deepEqual(sent, [['title', 'Harbour at dawn'], ['files', receipt]]);
      assert.deepEqual([...new URL(page.url()).searchParams.getAll('files')], [receipt], 'the submission itself carries the receipt');

      const stored = await objectSha256(s3, bucket, key);
      assert.equal(stored.size, keep.size);
      assert.equal(stored.sha256, keep.sha256);
      const files = await walk(server.dataDir);
      // s3s-fs keeps an upload as `.upload-<id>.json` plus `.upload_id-<id>.part-<n>` in its root.
      assert.deepEqual(files.filter((f) => /(^|\/)\.upload/.test(f)), [], 'no multipart upload or part remains');
      assert.deepEqual(files.filter((f) => f.endsWith(cancel.name)), [], 'no object of the cancelled file');
      assert.deepEqual(page.pageErrors, []);

      // Back to the form: the finished upload is still there (form state restore or the page cache).
      await page.goBack();
      await page.waitForSelector('body[data-ready="true"]');
      await page.waitForFunction((k) => document.querySelector('s3-direct-upload').keys.join() === k, key);
    } finally {
      await hold.release();
      await page.close();
    }
  });

  it('takes a stream through addStream: shown without a size until it ends, stored byte-exact, its value in the form', async () => {
    const page = await openForm(browser, server);
    try {
      await page.evaluate(installStreams);
      const out = await page.evaluate(async () => {
        const el = document.querySelector('s3-direct-upload');
        const TOTAL = 12 * 1024 * 1024 + 4321; // three 5 MiB parts, the last one short
        const source = window.streams.make(TOTAL, { seed: 11, chunk: 256 * 1024 });
        const sizes = [];
        el.addEventListener('upload-progress', () => sizes.push([el.items[0].size, el.progress.bytesTotal]));
        const done = new Promise((resolve) => el.addEventListener('queue-complete', resolve, { once: true }));
        el.addStream(source.stream, { filename: 'live.bin', contentType: 'application/octet-stream' });
        const shown = el.shadowRoot.querySelector('.item .size').textContent;
        await done;
        return {
          total: TOTAL,
          shown,
          sizes,
          item: el.items[0],
          shownAfter: el.shadowRoot.querySelector('.item .size').textContent,
          keys: el.keys,
          values: el.values,
          sha256: await source.done,
        };
      });
      assert.equal(out.shown, 'Stream', 'a stream has no size to show while it is read');
      assert.ok(out.sizes.some(([item, total]) => item === null && total === null), JSON.stringify(out.sizes));
      assert.equal(out.item.state, 'done');
      assert.equal(out.item.size, out.total);
      assert.equal(out.shownAfter, '12.6 MB', 'its size once it ended');
      assert.equal(out.keys.length, 1);
      assert.ok(out.keys[0].endsWith('/live.bin'), out.keys[0]);
      assert.equal(out.values.length, 1, 'the form holds one value for the stream');
      assert.deepEqual(await objectSha256(s3, bucket, out.keys[0]), { sha256: out.sha256, size: out.total });
      const events = await page.evaluate(() => window.widgetEvents);
      const start = events.find((e) => e.type === 'upload-start');
      assert.deepEqual([start.detail.name, start.detail.size, start.detail.file], ['live.bin', null, null]);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('takes dropped files, refuses those over max-size or outside accept in plain words, and resets', async () => {
    const page = await openForm(browser, server);
    try {
      await page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload');
        el.setAttribute('accept', '.txt, video/*');
        el.setAttribute('max-size', '1MB');
        el.messages = { file_type_not_accepted: 'Only text files and videos, please.' };
      });
      assert.equal(await page.locator('s3-direct-upload [part="hint"]').textContent(), '.txt, video/* · up to 1.0 MB each');
      // A drag from the desktop, as the browser delivers it.
      const over = await page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload');
        const zone = el.shadowRoot.querySelector('[part="dropzone"]');
        const dt = new DataTransfer();
        dt.items.add(new File(['hello from a drop\n'], 'dropped.txt', { type: 'text/plain' }));
        dt.items.add(new File([new Uint8Array(1_000_001)], 'too-big.txt', { type: 'text/plain' }));
        dt.items.add(new File([new Uint8Array(10)], 'photo.png', { type: 'image/png' }));
        const fire = (type) => zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, composed: true, cancelable: true }));
        fire('dragenter');
        const accepted = !fire('dragover'); // cancelled: the element takes the drop
        const marked = el.hasAttribute('dragover');
        fire('drop');
        return { accepted, marked, after: el.hasAttribute('dragover') };
      });
      assert.deepEqual(over, { accepted: true, marked: true, after: false });

      const done = await waitForItem(page, 'dropped.txt', (row) => row.state === 'done');
      assert.deepEqual(page.requested.filter((p) => p.includes('widget-')), [], 'files alone do not load the folder module');
      await page.locator('s3-direct-upload li[data-state="done"] [part="name"]').click();
      assert.notEqual((await focused(page)).part, 'dropzone', 'a click on a row does not jump to the drop zone');
      const tooBig = await waitForItem(page, 'too-big.txt', (row) => row.state === 'error');
      assert.equal(tooBig.error.code, 'file_too_large');
      assert.equal(tooBig.error.message, 'This file is larger than the 1.0 MB limit.');
      const png = await waitForItem(page, 'photo.png', (row) => row.state === 'error');
      assert.equal(png.error.code, 'file_type_not_accepted');
      assert.equal(png.error.message, 'Only text files and videos, please.', 'the page overrides the sentence');
      assert.equal(await page.getByRole('button', { name: 'Retry upload of too-big.txt' }).count(), 0,
        'trying again cannot help: no Retry');
      assert.equal(await page.evaluate(() => document.querySelector('s3-direct-upload').state), 'error');
      assert.match(await page.evaluate(() => document.querySelector('s3-direct-upload').validationMessage), /2 files could not be uploaded/);

      await page.getByRole('button', { name: 'Remove too-big.txt' }).click();
      await page.getByRole('button', { name: 'Remove photo.png' }).click();
      const state = await page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload');
        const receipts = [...new FormData(el.form).getAll('files')];
        el.setAttribute('form-value', 'key');
        return { state: el.state, valid: el.checkValidity(), keys: el.keys, receipts, form: [...new FormData(el.form).getAll('files')] };
      });
      assert.deepEqual(state, {
        state: 'done', valid: true, keys: [done.result.key], receipts: [done.result.receipt], form: [done.result.key],
      }, 'the form submits receipts, or keys with form-value="key"');
      const { sha256 } = await objectSha256(s3, bucket, done.result.key);
      assert.equal(sha256, createHash('sha256').update('hello from a drop\n').digest('hex'));

      const reset = await page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload');
        el.form.reset();
        return { items: el.items.length, state: el.state, form: [...new FormData(el.form).getAll('files')] };
      });
      assert.deepEqual(reset, { items: 0, state: 'idle', form: [] });

      // Without `multiple`, one file: the first of a drop, and a later choice replaces it.
      // Disabled, the element takes nothing.
      const drop = (names) => page.evaluate((list) => {
        const el = document.querySelector('s3-direct-upload');
        const dt = new DataTransfer();
        for (const n of list) dt.items.add(new File([`content of ${n}`], n, { type: 'text/plain' }));
        el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, composed: true, cancelable: true }));
        return el.items.map((i) => i.name);
      }, names);
      await page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload');
        el.multiple = false;
        el.disabled = true;
      });
      assert.deepEqual(await drop(['ignored.txt']), [], 'a disabled element takes no files');
      assert.equal(await page.locator('s3-direct-upload [part="dropzone"]').isDisabled(), true);
      await page.evaluate(() => { document.querySelector('s3-direct-upload').disabled = false; });
      assert.deepEqual(await drop(['one.txt', 'two.txt']), ['one.txt']);
      assert.equal(await page.evaluate(() => document.querySelector('s3-direct-upload').shadowRoot.querySelector('input[type=file]').multiple), false);
      await waitForItem(page, 'one.txt', (row) => row.state === 'done');
      assert.deepEqual(await drop(['three.txt']), ['three.txt'], 'a new choice replaces the file');
      const three = await waitForItem(page, 'three.txt', (row) => row.state === 'done');
      assert.deepEqual(await page.evaluate(() => [...new FormData(document.querySelector('#form')).getAll('files')]), [three.result.key]);

      // Replacing a file that is still uploading cancels it.
      const hold = await holdParts(page, 'held.bin');
      try {
        await page.evaluate(() => {
          const el = document.querySelector('s3-direct-upload');
          el.removeAttribute('accept');
          el.removeAttribute('max-size');
          const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(12 * 1024 * 1024)], 'held.bin'));
          el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, composed: true, cancelable: true }));
        });
        await hold.firstHeld;
        assert.deepEqual(await drop(['four.txt']), ['four.txt']);
        await waitForItem(page, 'four.txt', (row) => row.state === 'done');
        const cancels = await page.evaluate(() => window.widgetEvents.filter((e) => e.type === 'upload-cancel').map((e) => e.detail.name));
        assert.deepEqual(cancels, ['held.bin']);
      } finally {
        await hold.release();
      }
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('works with the keyboard alone: open the picker, start, pause, resume, cancel, remove', async () => {
    const dir = await tempDir();
    const file = await randomFile(dir, 'keyboard-16MiB.bin', 16 * MiB);
    const page = await openForm(browser, server);
    const hold = await holdParts(page, file.name, { pass: 1 });
    try {
      await page.keyboard.press('Tab');
      assert.equal((await focused(page)).tag, 'input', 'Tab reaches the title first');
      await page.keyboard.press('Tab');
      let now = await focused(page);
      assert.equal(now.part, 'dropzone', 'then the drop zone');
      assert.match(now.label, /choose files/);
      assert.notEqual(now.outline.split(' ')[0], 'none', `the drop zone shows focus (${now.outline})`);

      const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
      await chooser.setFiles(file.path);
      await waitForItem(page, file.name, (row) => row.state === 'uploading' && row.progress?.partsDone >= 1);

      await page.keyboard.press('Tab');
      now = await focused(page);
      assert.equal(now.label, `Pause upload of ${file.name}`);
      assert.notEqual(now.outline.split(' ')[0], 'none', `buttons show focus (${now.outline})`);
      await page.keyboard.press('Space');
      await waitForItem(page, file.name, (row) => row.state === 'paused');
      assert.equal((await focused(page)).label, `Resume upload of ${file.name}`, 'focus stays on the toggled button');
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').getAttribute('state') === 'paused');

      await page.keyboard.press('Enter');
      await waitForItem(page, file.name, (row) => row.state === 'uploading');
      assert.equal((await focused(page)).label, `Pause upload of ${file.name}`);

      await page.keyboard.press('Tab');
      assert.equal((await focused(page)).label, `Cancel upload of ${file.name}`);
      await page.keyboard.press('Space');
      await waitForItem(page, file.name, (row) => row.state === 'cancelled');
      assert.equal((await focused(page)).label, `Remove ${file.name}`, 'focus moves to what the row offers now');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').items.length === 0);
      assert.equal((await focused(page)).part, 'dropzone', 'focus returns to the drop zone');
      assert.equal(await page.evaluate(() => document.querySelector('s3-direct-upload').state), 'idle');

      // Space opens the picker too.
      const [again] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Space')]);
      assert.ok(again.isMultiple());
      const live = await page.evaluate(() => document.querySelector('s3-direct-upload').shadowRoot.querySelector('[aria-live="polite"]').textContent);
      assert.match(live, new RegExp(`Upload of ${file.name} cancelled`), 'the cancellation was announced');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await hold.release();
      await page.close();
    }
  });

  it('looks right in every state: idle, uploading, paused, error, done (screenshots); Retry recovers', async (t) => {
    await rm(artifacts, { recursive: true, force: true });
    await mkdir(artifacts, { recursive: true });
    const shot = async (page, state) => {
      await page.mouse.move(0, 0); // no hover style left on the button just clicked
      await page.locator('s3-direct-upload')
        .screenshot({ path: path.join(artifacts, `${state}.png`), animations: 'disabled' });
    };
    const widgetState = (page) => page.evaluate(() => document.querySelector('s3-direct-upload').getAttribute('state'));
    const dir = await tempDir();
    const [moving, refused, small] = await Promise.all([
      randomFile(dir, 'holiday-video-16MiB.mp4', 16 * MiB),
      randomFile(dir, 'refused-scan.pdf', 2 * MiB),
      randomFile(dir, 'notes.txt', 300 * 1024),
    ]);

    // idle, uploading, paused: one file whose parts past the first are held.
    let page = await openForm(browser, server);
    let hold = await holdParts(page, moving.name, { pass: 1 });
    try {
      assert.equal(await widgetState(page), 'idle');
      await shot(page, 'idle');
      await page.setInputFiles('s3-direct-upload input[type=file]', moving.path);
      await waitForItem(page, moving.name, (row) => row.state === 'uploading' && row.progress?.partsDone >= 1);
      assert.equal(await widgetState(page), 'uploading');
      const bar = page.getByRole('progressbar', { name: `Upload of ${moving.name}` });
      const now = Number(await bar.getAttribute('aria-valuenow'));
      assert.ok(now > 0 && now < 100, `the bar shows partial progress (${now} %)`);
      assert.match(await bar.getAttribute('aria-valuetext'), /Uploading, \d+ %, .* of 16\.8 MB/);
      await shot(page, 'uploading');
      await page.getByRole('button', { name: `Pause upload of ${moving.name}` }).click();
      await waitForItem(page, moving.name, (row) => row.state === 'paused');
      assert.equal(await widgetState(page), 'paused');
      await shot(page, 'paused');
    } finally {
      await hold.release();
      await page.close();
    }

    // error: the store refuses every PUT of the file with 403 AccessDenied.
    page = await openForm(browser, server);
    try {
      await page.route((url) => url.pathname.endsWith(`/${refused.name}`), (route) => (route.request().method() === 'PUT'
        ? route.fulfill({
          status: 403,
          headers: { 'content-type': 'application/xml', 'access-control-allow-origin': '*' },
          body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
        })
        : route.continue()));
      await page.setInputFiles('s3-direct-upload input[type=file]', refused.path);
      const row = await waitForItem(page, refused.name, (r) => r.state === 'error');
      assert.equal(row.error.code, 'http_error');
      assert.match(row.error.message, /refused/, 'a sentence a person understands');
      assert.equal(await widgetState(page), 'error');
      const detail = page.locator('s3-direct-upload details');
      assert.match(await detail.textContent(), /http_error · HTTP 403/, 'the code stays in the details');
      await page.getByRole('button', { name: `Retry upload of ${refused.name}` }).waitFor();
      await page.getByRole('button', { name: `Remove ${refused.name}` }).waitFor();
      const events = await page.evaluate(() => window.widgetEvents.filter((e) => e.type === 'upload-error'));
      assert.deepEqual(events.map((e) => [e.detail.name, e.detail.code, e.detail.status]), [[refused.name, 'http_error', 403]]);
      assert.equal(await page.evaluate(() => document.querySelector('#form').checkValidity()), false,
        'a failed upload keeps the form from submitting');
      await shot(page, 'error');

      // The store takes the file again: Retry finishes it.
      await page.unrouteAll({ behavior: 'ignoreErrors' });
      await page.getByRole('button', { name: `Retry upload of ${refused.name}` }).click();
      const retried = await waitForItem(page, refused.name, (r) => r.state === 'done');
      assert.equal((await objectSha256(s3, bucket, retried.result.key)).sha256, refused.sha256);
      const starts = await page.evaluate(() => window.widgetEvents.filter((e) => e.type === 'upload-start').length);
      assert.equal(starts, 2, 'the retry started the upload again');
      assert.equal(await widgetState(page), 'done');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }

    // done.
    page = await openForm(browser, server);
    try {
      await page.setInputFiles('s3-direct-upload input[type=file]', small.path);
      const row = await waitForItem(page, small.name, (r) => r.state === 'done');
      assert.equal(await widgetState(page), 'done');
      const bar = page.getByRole('progressbar', { name: `Upload of ${small.name}` });
      assert.equal(await bar.getAttribute('aria-valuenow'), '100');
      assert.equal((await objectSha256(s3, bucket, row.result.key)).sha256, small.sha256);
      await shot(page, 'done');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
    t.diagnostic(`widget screenshots: ${artifacts}/{idle,uploading,paused,error,done}.png`);
  });
});

describe('the widget against a signing server that wants a bearer token', () => {
  const jwtSecret = randomBytes(32).toString('hex');
  let browser;
  let server;
  let s3;

  /** An HS256 JWT, as the application backend would mint for a signed-in user. */
  function jwt(claims) {
    const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
    return `${body}.${createHmac('sha256', jwtSecret).update(body).digest('base64url')}`;
  }

  before(async () => {
    [browser, server] = await Promise.all([
      launchBrowser(),
      startServer({ args: ['--auth', 'jwt'], env: { S3_DIRECT_JWT_SECRET: jwtSecret } }),
    ]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('without a token says so in plain words; with `headers` set, Retry uploads the file', async () => {
    const dir = await tempDir();
    const file = await randomFile(dir, 'signed-in-only.bin', 6 * MiB + 3);
    const page = await openForm(browser, server);
    try {
      await page.setInputFiles('s3-direct-upload input[type=file]', file.path);
      const refused = await waitForItem(page, file.name, (row) => row.state === 'error');
      assert.equal(refused.error.code, 'unauthenticated');
      assert.equal(refused.error.message, 'You are not signed in, or your session has expired. Sign in again and retry.');

      await page.evaluate((token) => {
        document.querySelector('s3-direct-upload').headers = { Authorization: `Bearer ${token}` };
      }, jwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 }));
      await page.getByRole('button', { name: `Retry upload of ${file.name}` }).click();
      const done = await waitForItem(page, file.name, (row) => row.state === 'done');
      const stored = await objectSha256(s3, 's3-direct', done.result.key);
      assert.equal(stored.sha256, file.sha256);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });
});
