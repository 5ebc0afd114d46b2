// A backend that does not trust the browser: the <s3-direct-upload> widget in the plain form of
// web/form.html posts, for each file, the server's receipt; a small test backend (a node http
// server standing for the application) verifies each posted value with jose against the signing
// server's /.well-known/jwks.json, for a small file (one PUT) and a multipart one, and refuses a
// tampered receipt and one signed by a foreign key.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { launchBrowser } from '../lib/browser.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { RECEIPT_TYPE as TYPE, foreign, tampered } from '../lib/receipts.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';

const BUCKET = 's3-direct';

/**
 * The application: takes a posted form (`application/x-www-form-urlencoded`), verifies every
 * `files` value as a receipt against `jwksUrl` and answers 200 with the verified claims, or 400
 * naming the first value it refused. Every post is kept in `posts`.
 */
async function startBackend(jwksUrl) {
  const keys = createRemoteJWKSet(new URL(jwksUrl));
  const posts = [];
  const server = http.createServer(async (req, res) => {
    if (req.method !== 'POST') { // the browser's favicon request, say
      res.writeHead(404).end();
      return;
    }
    let body = '';
    for await (const chunk of req) body += chunk;
    const form = new URLSearchParams(body);
    const post = { title: form.get('title'), verified: [], refused: null };
    posts.push(post);
    for (const receipt of form.getAll('files')) {
      try {
        const { payload } = await jwtVerify(receipt, keys, { issuer: 's3-direct', typ: TYPE, algorithms: ['EdDSA'], maxTokenAge: '5m' });
        post.verified.push(payload);
      } catch (e) {
        post.refused = e.code ?? e.message;
        break;
      }
    }
    res.writeHead(post.refused ? 400 : 200, { 'content-type': 'text/plain' });
    res.end(post.refused ? `refused: ${post.refused}` : `stored ${post.verified.length} files`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${server.address().port}/videos`;
  /** Posts `fields` (`[[name, value]]`) as a form from outside the browser; the answer's status. */
  const post = async (fields) => (await fetch(url, { method: 'POST', body: new URLSearchParams(fields) })).status;
  return { url, posts, post, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe('a form backend verifies what the widget posts', () => {
  let browser;
  let server;
  let backend;
  let s3;

  before(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    backend = await startBackend(`${server.url}/.well-known/jwks.json`);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await backend?.close();
    await server?.stop();
  });

  it('a small and a multipart file post receipts that verify; tampered and foreign ones are refused', async () => {
    const dir = await tempDir();
    const small = await randomFile(dir, 'small.bin', 300_000);
    const big = await randomFile(dir, 'big-12MiB.bin', 12 * MiB + 5);
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err));
    try {
      await page.goto(`${server.url}/form.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      // The page's own form, posting to the application instead of back to itself.
      await page.evaluate((action) => {
        const form = document.querySelector('#form');
        form.action = action;
        form.method = 'post';
        document.querySelector('s3-direct-upload').setAttribute('part-size', '5MiB');
      }, backend.url);
      await page.fill('#title', 'Two takes');
      await page.locator('s3-direct-upload input[type=file]').setInputFiles([small.path, big.path]);
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').state === 'done', null, { timeout: 120_000 });
      const items = await page.evaluate(() => document.querySelector('s3-direct-upload').items.map((i) => i.result));
      await Promise.all([page.waitForURL(backend.url), page.click('#submit')]);
      assert.match(await page.textContent('body'), /stored 2 files/);

      assert.equal(backend.posts.length, 1);
      const [posted] = backend.posts;
      assert.equal(posted.title, 'Two takes');
      assert.equal(posted.refused, null);
      assert.deepEqual(posted.verified.map((c) => [c.key, c.size]), items.map((r) => [r.key, r.size]));
      for (const [file, claims] of [[small, posted.verified[0]], [big, posted.verified[1]]]) {
        assert.equal(claims.sub, 'anonymous');
        assert.equal(claims.bucket, BUCKET);
        assert.equal(claims.size, file.size);
        const stored = await objectSha256(s3, BUCKET, claims.key);
        assert.equal(stored.sha256, file.sha256, `${file.name}: the receipt names the stored bytes`);
      }
      assert.equal(posted.verified[0].upload_id, posted.verified[0].key, 'one PUT: the key is its upload id');
      assert.notEqual(posted.verified[1].upload_id, posted.verified[1].key, 'multipart: the store upload id');

      // What a user could post instead: the same receipt with a bigger size, or one made with
      // another key under the published kid.
      const [receipt] = items.map((r) => r.receipt);
      assert.equal(await backend.post([['title', 'forged'], ['files', tampered(receipt, { size: 1 << 30 })]]), 400);
      assert.equal(backend.posts.at(-1).refused, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
      assert.equal(await backend.post([['title', 'foreign'], ['files', await foreign(receipt)]]), 400);
      assert.equal(backend.posts.at(-1).refused, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
      // A bare key, as the widget posts with form-value="key", is no receipt.
      assert.equal(await backend.post([['title', 'key'], ['files', items[0].key]]), 400);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
});
