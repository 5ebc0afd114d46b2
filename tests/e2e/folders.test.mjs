// Folders on the <s3-direct-upload> element and the JS API, in Chromium on the embedded store:
// a tree of 3 levels and 50 files with Unicode and awkward names chosen through the folder
// picker (`folders`: <input webkitdirectory>) is stored with every file under its sanitised path
// within the folder, and the form posts one value per file; a folder dropped on the element is
// walked (empty folders noted, not dropped silently); a path that escapes the chosen folder is
// refused by the server.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { launchBrowser } from '../lib/browser.mjs';
import { tempDir } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';
import { createHash } from 'node:crypto';

const bucket = 's3-direct';

/**
 * Writes the tree: `Holiday 🎉/` with 3 levels, 50 files of 1–9 KB; returns the folder and each
 * file's path within it (as the browser names it) with its SHA-256.
 */
async function writeTree() {
  const root = path.join(await tempDir('s3-direct-folder-'), 'Holiday 🎉');
  const dirs = ['', 'día 1', 'día 1/.thumbs', 'día 1/.thumbs/small ü', 'notes+drafts%20'];
  const names = (i) => [`IMG ${i}.jpg`, `ñ-${i} 日本.txt`, `..${i}.bin`, `a b+c%20${i}`, `${'long-'.repeat(30)}${i}.dat`];
  const files = [];
  for (let i = 0; i < 50; i += 1) {
    const dir = dirs[i % dirs.length];
    const name = names(i)[Math.floor(i / dirs.length) % 5];
    const rel = dir ? `${dir}/${name}` : name;
    const bytes = Buffer.alloc(1000 + (i * 173) % 8000, i);
    await mkdir(path.join(root, dir), { recursive: true });
    await writeFile(path.join(root, rel), bytes);
    files.push({ rel: `Holiday 🎉/${rel}`, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
  }
  await mkdir(path.join(root, 'empty'), { recursive: true });
  return { root, files };
}

/** The path the server keeps for `rel`: each segment cleaned as keys.rs does (leading dots go). */
const sanitised = (rel) => rel.split('/').map((s) => s.replace(/^[.\s]+/, '')).join('/');

describe('folders', () => {
  let browser;
  let server;
  let s3;
  let tree;

  before(async () => {
    [browser, server, tree] = await Promise.all([launchBrowser(), startServer(), writeTree()]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function openForm() {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err));
    await page.goto(`${server.url}/form.html`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    page.pageErrors = errors;
    return page;
  }

  const finished = (page, count) => page.waitForFunction((n) => {
    const el = document.querySelector('s3-direct-upload');
    const items = el.items;
    if (items.some((i) => i.state === 'error')) return items;
    return items.length === n && items.every((i) => i.state === 'done') ? items : null;
  }, count, { timeout: 120_000, polling: 100 }).then((h) => h.jsonValue());

  it('a folder chosen through the picker is stored file by file under its paths; the form posts one value each', async () => {
    const page = await openForm();
    try {
      await page.evaluate(() => document.querySelector('s3-direct-upload').setAttribute('folders', ''));
      assert.equal(await page.evaluate(() => document.querySelector('s3-direct-upload')
        .shadowRoot.querySelector('input[type=file]').webkitdirectory), true, 'the picker chooses folders');
      await page.setInputFiles('s3-direct-upload input[type=file]', tree.root);
      const items = await finished(page, tree.files.length);
      assert.deepEqual(items.filter((i) => i.state !== 'done').map((i) => [i.name, i.error?.detail]), []);
      const byPath = new Map(items.map((i) => [i.path, i]));
      for (const f of tree.files) {
        const item = byPath.get(f.rel);
        assert.ok(item, `a row for ${f.rel}`);
        const key = item.result.key;
        // The folders whole; the name cut to the store's key limit (the embedded store's is 126
        // bytes for this bucket), keeping its extension.
        const want = sanitised(f.rel);
        const folders = want.slice(0, want.lastIndexOf('/') + 1);
        const name = want.slice(folders.length);
        const kept = key.slice(key.lastIndexOf('/') + 1);
        assert.ok(key.includes(`/${folders}`) && key.endsWith(`/${folders}${kept}`), `${f.rel} → ${key}`);
        const ext = path.extname(name);
        assert.ok(kept === name || (kept.endsWith(ext) && name.startsWith(kept.slice(0, kept.length - ext.length))),
          `${f.rel} → ${key}`);
        assert.deepEqual(await objectSha256(s3, bucket, key), { sha256: f.sha256, size: f.size });
      }
      const posted = await page.evaluate(() => new FormData(document.querySelector('#form')).getAll('files'));
      assert.equal(posted.length, tree.files.length, 'one value per file');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('a dropped folder is walked, each file keeps its path, and an empty folder is noted', async () => {
    const page = await openForm();
    try {
      // A drop as the browser delivers a folder: DataTransfer items whose entries are walked.
      // The entries are built in the page (no driver can drop a real folder), over real Files.
      await page.evaluate(() => {
        const file = (name, text) => new File([text], name, { type: 'text/plain' });
        const fileEntry = (dir, f) => ({ isFile: true, isDirectory: false, name: f.name, fullPath: `${dir}/${f.name}`, file: (ok) => ok(f) });
        const dirEntry = (fullPath, children) => ({
          isFile: false, isDirectory: true, fullPath,
          createReader: () => {
            // Entries come in batches, the last one empty, as browsers read them.
            const batches = [children.slice(0, 2), children.slice(2), []];
            return { readEntries: (ok) => setTimeout(() => ok(batches.shift() ?? []), 0) };
          },
        });
        const inner = dirEntry('/drop/sub', [fileEntry('/drop/sub', file('c.txt', 'c'))]);
        const top = dirEntry('/drop', [
          fileEntry('/drop', file('a.txt', 'a')), fileEntry('/drop', file('b ü.txt', 'b')), inner, dirEntry('/drop/empty', []),
        ]);
        const loose = file('loose.txt', 'l');
        const el = document.querySelector('s3-direct-upload');
        const event = new Event('drop', { bubbles: true, cancelable: true });
        Object.defineProperty(event, 'dataTransfer', {
          value: {
            types: ['Files'],
            files: [],
            items: [
              { kind: 'file', webkitGetAsEntry: () => top },
              { kind: 'file', webkitGetAsEntry: () => fileEntry('', loose) },
            ],
          },
        });
        el.dispatchEvent(event);
      });
      const items = await finished(page, 4);
      assert.deepEqual(items.map((i) => [i.name, i.path]).sort(), [
        ['drop/a.txt', 'drop/a.txt'], ['drop/b ü.txt', 'drop/b ü.txt'], ['drop/sub/c.txt', 'drop/sub/c.txt'], ['loose.txt', null],
      ]);
      for (const item of items) {
        assert.ok(item.result.key.endsWith(`/${item.path ?? item.name}`), item.result.key);
      }
      const note = await page.evaluate(() => document.querySelector('s3-direct-upload')
        .shadowRoot.querySelector('[part=notes]').textContent);
      assert.match(note, /drop\/empty is empty/);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('a relative path that leaves the chosen folder is refused by the server', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.url}/queue.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      const error = await page.evaluate(async () => {
        const uploader = new window.s3direct.Uploader({ endpoint: '/s3' });
        try {
          await uploader.upload(new File(['x'], 'a.bin'), { relativePath: '../../etc/a.bin' });
          return null;
        } catch (e) {
          return { name: e.name, code: e.code };
        }
      });
      assert.deepEqual(error, { name: 'S3DirectError', code: 'invalid_filename' });
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      assert.ok(!(listed.Contents ?? []).some((o) => o.Key.includes('etc')), 'nothing stored');
    } finally {
      await page.close();
    }
  });
});
