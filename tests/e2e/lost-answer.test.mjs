// A completion whose answer is lost on the way back (the proxy in tests/lib/answer-drop.mjs cuts
// the connection after the server answered) is asked again by the client, which gets its receipt;
// the object is stored once, for a multipart upload and for a small file alike.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { launchBrowser } from '../lib/browser.mjs';
import { startAnswerDropper } from '../lib/answer-drop.mjs';
import { RECEIPT_TYPE as TYPE } from '../lib/receipts.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';

const ISSUER = 's3-direct';
const BUCKET = 's3-direct';

/** The bytes `queueInPage` uploads. */
function pattern(size) {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i += 1) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

/** Uploads `files` (`[{ name, size }]`) through one `UploadQueue` at `url`; their results. */
async function queueInPage(browser, url, files) {
  const page = await browser.newPage();
  try {
    await page.goto(`${url}/`);
    return await page.evaluate(async (files) => {
      const { default: init, UploadQueue } = await import('/pkg/s3_direct.js');
      await init();
      const queue = new UploadQueue({ resume: false });
      const items = files.map(({ name, size }) => {
        const bytes = new Uint8Array(size);
        for (let i = 0; i < size; i += 1) bytes[i] = (i * 31 + 7) & 0xff;
        return queue.add(new File([bytes], name, { type: 'video/mp4' }));
      });
      return Promise.all(items.map(async (item) => ({ ...(await item.promise) })));
    }, files);
  } finally {
    await page.close();
  }
}

async function jwksOf(server) {
  const answer = await fetch(`${server.url}/.well-known/jwks.json`);
  assert.equal(answer.status, 200);
  return answer.json();
}

describe('a completion whose answer was lost', () => {
  let browser;
  let server;
  let proxy;
  let s3;

  before(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    // The first completion of each kind reaches the server, which completes the upload; its answer
    // never reaches the browser.
    const first = new Set();
    proxy = await startAnswerDropper(server.url, {
      drop: ({ method, path }) => {
        const kind = path === '/s3/params/complete' ? 'small'
          : /^\/s3\/multipart\/[^/]+\/complete$/.test(path) ? 'multipart' : null;
        if (method !== 'POST' || kind === null || first.has(kind)) return false;
        first.add(kind);
        return true;
      },
    });
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.stop();
  });

  it('the client asks again, gets the receipt, and the object is stored once', async () => {
    const files = [{ name: 'lost-answer.mp4', size: 12 * 2 ** 20 + 3 }, { name: 'small.mp4', size: 70_000 }];
    const results = await queueInPage(browser, proxy.url, files);
    const completions = proxy.log.filter((r) => r.method === 'POST' && r.path.endsWith('/complete'));
    assert.deepEqual(completions.map((r) => [r.path.startsWith('/s3/params') ? 'small' : 'multipart', r.status, r.dropped]).sort(), [
      ['multipart', 200, false], ['multipart', 200, true], ['small', 200, false], ['small', 200, true],
    ], 'each first completion succeeded on the server and its answer was lost, then it was asked again');
    const jwks = createLocalJWKSet(await jwksOf(server));
    for (const [i, { name, size }] of files.entries()) {
      const result = results[i];
      assert.equal(typeof result.receipt, 'string', `${name}: the retry answers a receipt`);
      const { payload } = await jwtVerify(result.receipt, jwks, { issuer: ISSUER, typ: TYPE, algorithms: ['EdDSA'] });
      assert.deepEqual([payload.key, payload.size], [result.key, size]);
      const stored = await objectSha256(s3, BUCKET, result.key);
      assert.equal(stored.sha256, createHash('sha256').update(pattern(size)).digest('hex'), `${name} holds its bytes`);
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'uploads/' }));
    assert.deepEqual((listed.Contents ?? []).map((o) => o.Key).sort(), results.map((r) => r.key).sort(),
      'one object per file, nothing else');
  });
});
