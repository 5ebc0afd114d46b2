// Browser scenarios shared by every store: each takes a running server, an S3 client for the store
// behind it and the bucket, drives the demo page in Chromium, and checks the store afterwards.
import assert from 'node:assert/strict';
import path from 'node:path';
import { openDemo, waitForRow } from './browser.mjs';
import { randomFile, tempDir, MiB } from './files.mjs';
import { objectSha256 } from './s3.mjs';

/**
 * A 64 MiB file in 5 MiB parts with 4 parts at once, plus two small files, all uploading together;
 * every object read back from the store must have the file's SHA-256.
 */
export async function uploadThreeFilesAtOnce({ browser, server, s3, bucket }) {
  const dir = await tempDir();
  const files = await Promise.all([
    randomFile(dir, 'big-64MiB.bin', 64 * MiB),
    randomFile(dir, 'ñ 日本 🎉 a+b%20.bin', 1234),
    randomFile(dir, 'small.txt', 100 * 1024 + 1),
  ]);
  const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 4, files: 3 });
  try {
    await page.setInputFiles('#picker', files.map((f) => f.path));
    const rows = await Promise.all(files.map((f) => waitForRow(page, f.name)));
    for (const [i, row] of rows.entries()) {
      assert.equal(row.state, 'done', `${files[i].name}: ${row.detail}`);
      assert.ok(row.key.endsWith(`/${files[i].name}`), `key ${row.key} keeps the file name`);
      const stored = await objectSha256(s3, bucket, row.key);
      assert.equal(stored.size, files[i].size, `${files[i].name}: stored size`);
      assert.equal(stored.sha256, files[i].sha256, `${files[i].name}: stored SHA-256`);
    }
    assert.deepEqual(page.pageErrors, []);
    return rows.map((r) => r.key);
  } finally {
    await page.close();
  }
}

/**
 * Cancels a 64 MiB upload half-way. Part PUTs past the sixth are held in the browser's network
 * layer (never answered) so that "half-way" is a fact of the test, not a race with a fast loopback.
 * Returns after the row shows "cancelled"; the caller checks the store.
 */
export async function cancelHalfWay({ browser, server }) {
  const dir = await tempDir();
  const file = await randomFile(dir, 'cancel-me-64MiB.bin', 64 * MiB);
  const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 4 });
  const held = [];
  let released = 0;
  let someHeld;
  const firstHeld = new Promise((resolve) => { someHeld = resolve; });
  await page.route((url) => url.searchParams.has('partNumber') && url.searchParams.has('uploadId'), (route) => {
    const n = Number(new URL(route.request().url()).searchParams.get('partNumber'));
    if (n <= 6) {
      released += 1;
      return route.continue();
    }
    held.push(route);
    someHeld();
    return undefined;
  });
  try {
    await page.setInputFiles('#picker', file.path);
    await page.waitForFunction(() => {
      const row = document.querySelector('#queue .upload');
      return row && Number(row.dataset.partsDone ?? 0) >= 6;
    }, null, { timeout: 60_000, polling: 50 });
    await firstHeld; // parts past the sixth are in flight, so this is a cancel mid-upload
    await page.click('#queue .upload .cancel');
    const row = await waitForRow(page, path.basename(file.path));
    assert.equal(row.state, 'cancelled', row.detail);
    assert.equal(released, 6, 'only the first six parts reached the store');
    return file;
  } finally {
    await Promise.allSettled(held.map((r) => r.abort()));
    await page.close();
  }
}
