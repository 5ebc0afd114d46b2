// Whole-system tests on the zero-config setup: the s3-direct binary with its embedded store, the
// demo page it serves, and headless Chromium.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { checksumsInAWorker } from '../lib/resilience.mjs';
import { cancelHalfWay, uploadThreeFilesAtOnce } from '../lib/scenarios.mjs';
import { s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';

/** Every file below `dir`, as paths relative to it. */
async function walk(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('embedded store', () => {
  let browser;
  let server;
  let s3;
  const bucket = 's3-direct';

  before(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    assert.ok(server.storeEndpoint, 'the server printed the embedded store endpoint');
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('uploads a 64 MiB file and two small ones at once, byte for byte', async () => {
    await uploadThreeFilesAtOnce({ browser, server, s3, bucket });
  });

  for (const algorithm of ['md5', 'sha256']) {
    it(`${algorithm} part checksums are computed in a Web Worker and sum up in the result`, async () => {
      await checksumsInAWorker({ browser, server, s3, bucket, algorithm });
    });
  }

  it('cancelling half-way leaves no object and no parts in the store', async () => {
    const file = await cancelHalfWay({ browser, server });
    const files = await walk(server.dataDir);
    // s3s-fs keeps an upload as `.upload-<id>.json` plus `.upload_id-<id>.part-<n>` in its root.
    assert.deepEqual(files.filter((f) => /(^|\/)\.upload/.test(f)), [], 'no multipart upload or part remains');
    assert.deepEqual(files.filter((f) => f.endsWith(path.basename(file.path))), [], 'no object was created');
  });
});
