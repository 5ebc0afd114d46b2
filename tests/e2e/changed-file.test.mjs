// A file changed on disk after it was chosen, on each browser engine (tests/lib/engines.mjs):
// the upload never hangs and never ends in a network or CORS message. Either it stores the file
// exactly as it was when chosen (Firefox keeps serving the bytes of a file that grew), or it fails
// at once with `file_unreadable` and keeps its multipart upload for a resume, as any error does.
//
// What each engine does with such a file (README, "Browser engines"): Chromium refuses to read it
// (NotReadableError) and fails its request; WebKit refuses to read it (NotFoundError) and sends a
// request whose body never comes; Firefox reads a file that grew as it was, one cut shorter
// short (refused), and one rewritten in place as it is now, without a sign (stored as it is now:
// no page can tell).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, open, readFile, rm, utimes } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { engineMissing, launchEngine, openDemoPage, selectedEngines } from '../lib/engines.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from '../lib/server.mjs';

const bucket = 's3-direct';

/** The keys of every object in the bucket (a few dozen here: one page). */
async function objectKeys(s3) {
  const answer = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (answer.Contents ?? []).map((o) => o.Key);
}

/**
 * Chooses `file` in a file input added to the demo page, calls `change(file.path)` once the page
 * holds the File, and uploads that File with the package's Uploader; `{ done, key, size }` or
 * `{ code, message }`. `queued`: through an UploadQueue, which sends small files as one PUT.
 */
async function uploadChanged(engine, server, file, change, queued) {
  const page = await openDemoPage(engine, server.url);
  try {
    await page.evaluate(() => {
      const input = document.createElement('input');
      input.type = 'file';
      input.id = 'changed-probe';
      document.body.append(input);
    });
    await page.setFiles('#changed-probe', [file.path]);
    await page.waitFor(() => document.getElementById('changed-probe').files.length === 1, null,
      { timeout: 10_000, what: 'the file input to hold the file' });
    await change(file.path);
    return await page.evaluate(async (queued) => {
      const { UploadQueue, Uploader } = await import('/pkg/s3_direct.js');
      const chosen = document.getElementById('changed-probe').files[0];
      const options = { endpoint: '/s3', partSize: 8 * 1024 * 1024, retryDelay: 100, maxRetryDelay: 1000 };
      try {
        // A queue sends files up to its single-PUT threshold (1 MiB here) as one presigned PUT.
        const r = await (queued
          ? new UploadQueue({ ...options, singlePutThreshold: 1024 * 1024 }).add(chosen).promise
          : new Uploader(options).upload(chosen));
        return { done: true, key: r.key, size: r.size };
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    }, queued);
  } finally {
    await page.close();
  }
}

/** The embedded store's incomplete uploads, as `s3-direct uploads list` reads them. */
function incompleteUploads(server) {
  const out = execFileSync(process.env.S3_DIRECT_BIN ?? path.join(repoRoot, 'target/debug/s3-direct'), ['uploads', 'list', '--data-dir', server.dataDir, '--json'], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** Marks the file modified 10 s from now, so no engine can take it for the one it was given. */
async function touchLater(file) {
  const later = new Date(Date.now() + 10_000);
  await utimes(file, later, later);
}

const changes = {
  async append(file, size) {
    // A small file grows by a few bytes, so that it stays below the single-PUT threshold where
    // the engine reports the new size (Chromium does).
    await appendFile(file, Buffer.alloc(size < MiB ? 64 : MiB, 0x5a));
    await touchLater(file);
  },
  async overwrite(file) {
    const handle = await open(file, 'r+');
    try {
      await handle.write(Buffer.alloc(16, 0x5a), 0, 16, 0);
    } finally {
      await handle.close();
    }
    await touchLater(file);
  },
  async truncate(file) {
    const handle = await open(file, 'r+');
    try {
      await handle.truncate(3 * MiB);
    } finally {
      await handle.close();
    }
    await touchLater(file);
  },
};

/**
 * What each engine does with a changed file: `stored` (the file as chosen), `refused`, or
 * `rewritten` (the file as it is now: Firefox reads a file rewritten in place and says nothing).
 */
const expected = {
  chromium: { append: 'refused', overwrite: 'refused', truncate: 'refused' },
  firefox: { append: 'stored', overwrite: 'rewritten', truncate: 'refused' },
  webkit: { append: 'refused', overwrite: 'refused', truncate: 'refused' },
};
const outcomes = {
  stored: 'stores the file as it was chosen',
  refused: 'fails at once with file_unreadable',
  rewritten: 'stores the file as it is now',
};

describe('a file changed after it was chosen', () => {
  let server;
  let s3;
  let dir;

  before(async () => {
    dir = await tempDir('s3-direct-changed-');
    server = await startServer();
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await server?.stop();
    if (server) await rm(server.dataDir, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const name of selectedEngines()) {
    describe(name, { skip: engineMissing(name) ?? false, timeout: 300_000 }, () => {
      let engine;
      before(async () => { engine = await launchEngine(name); });
      after(async () => { await engine?.close(); });

      const cases = [
        { how: 'append', size: 24 * MiB },
        { how: 'overwrite', size: 24 * MiB },
        { how: 'truncate', size: 24 * MiB },
        // Below the single-PUT threshold: the file goes as one presigned PUT.
        { how: 'append', size: MiB - 100, small: true },
      ];
      for (const { how, size, small } of cases) {
        const outcome = expected[name][how];
        it(`${small ? 'a small file, ' : ''}${how}: ${outcomes[outcome]}`, async () => {
          const change = changes[how];
          const file = await randomFile(dir, `${name}-${how}-${size}.bin`, size);
          const before = new Set(await objectKeys(s3));
          const result = await uploadChanged(engine, server, file, (p) => change(p, size), small);
          if (outcome === 'stored') {
            assert.equal(result.done, true, `${how}: ${JSON.stringify(result)}`);
            const stored = await objectSha256(s3, bucket, result.key);
            assert.equal(stored.size, file.size, 'the size it had when chosen');
            assert.equal(stored.sha256, file.sha256, 'the bytes it had when chosen');
          } else if (outcome === 'rewritten') {
            assert.equal(result.done, true, `${how}: ${JSON.stringify(result)}`);
            const stored = await objectSha256(s3, bucket, result.key);
            const now = createHash('sha256').update(await readFile(file.path)).digest('hex');
            assert.notEqual(now, file.sha256);
            assert.equal(stored.sha256, now, 'the bytes the file holds now');
          } else {
            assert.equal(result.code, 'file_unreadable', `${how}: ${JSON.stringify(result)}`);
            assert.match(result.message, /changed, moved or deleted since it was chosen must be chosen again/);
            assert.doesNotMatch(result.message, /CORS|network/i);
            const added = (await objectKeys(s3)).filter((k) => !before.has(k));
            assert.deepEqual(added, [], 'no object was stored');
            const kept = incompleteUploads(server).uploads.filter((u) => JSON.stringify(u).includes(`/${file.name}`));
            assert.equal(kept.length, small ? 0 : 1, small ? 'one PUT leaves nothing behind' : 'its multipart upload is kept for a resume');
          }
        });
      }
    });
  }
});
