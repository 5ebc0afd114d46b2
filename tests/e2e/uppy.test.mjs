// Uppy compatibility: @uppy/core + @uppy/aws-s3 (from npm, bundled for the browser with esbuild from
// tests/uppy/main.js), configured as for Companion but with `endpoint` pointing at s3-direct and a
// bearer token in `headers`, upload a 64 MiB file as a multipart upload and a small file as one
// POST policy form (what /s3/params answers Companion clients, as Companion does). The server runs with JWT auth, so the token is what lets Uppy in; the page is
// served from another origin (the usual Uppy + Companion layout), so the signing API's CORS is
// exercised too. Objects are read back through S3 and compared by SHA-256.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';
import { bundlePage, openUppy, serveFiles, uploadAll } from '../lib/uppy.mjs';

const bucket = 's3-direct';
const jwtSecret = randomBytes(32).toString('hex');
const multipartFrom = 8 * MiB;

/** An HS256 JWT, as the application backend would mint for a signed-in user. */
function jwt(claims, secret = jwtSecret) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const token = (sub) => jwt({ sub, exp: Math.floor(Date.now() / 1000) + 600, key_prefix: sub });

describe('Uppy (@uppy/core + @uppy/aws-s3) against s3-direct with JWT auth', () => {
  let browser;
  let server;
  let app;
  let s3;

  before(async () => {
    const { files } = await bundlePage('uppy', await tempDir('s3-direct-uppy-'));
    app = await serveFiles(files);
    [browser, server] = await Promise.all([
      launchBrowser(),
      startServer({
        args: ['--auth', 'jwt', '--cors-origin', app.url],
        env: { S3_DIRECT_JWT_SECRET: jwtSecret },
      }),
    ]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await app?.close();
  });

  it('refuses the signing calls Uppy makes without a valid bearer token', async () => {
    const create = (headers) => fetch(`${server.url}/s3/multipart`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ filename: 'x.bin', type: 'application/octet-stream', metadata: {} }),
    });
    const params = (headers) => fetch(`${server.url}/s3/params?filename=x.txt&type=text%2Fplain`, { headers });
    for (const [what, headers] of [
      ['no token', {}],
      ['a token signed with another secret', { authorization: `Bearer ${jwt({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 }, randomBytes(32).toString('hex'))}` }],
      ['an expired token', { authorization: `Bearer ${jwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 3600 })}` }],
    ]) {
      for (const [route, call] of [['POST /s3/multipart', create], ['GET /s3/params', params]]) {
        const res = await call(headers);
        assert.equal(res.status, 401, `${route} with ${what}`);
        assert.equal((await res.json()).error, 'unauthenticated', `${route} with ${what}`);
      }
    }
  });

  it('Uppy without the token in `headers` reports an error and stores nothing', async () => {
    const file = await randomFile(await tempDir(), 'uppy-no-token.bin', 64 * 1024);
    const { page } = await openUppy(browser, app.url, { endpoint: server.url, multipartFrom });
    try {
      const events = await uploadAll(page, [file]);
      assert.deepEqual(events.filter((e) => e.type === 'success'), []);
      assert.equal(events.filter((e) => e.type === 'error' && e.name === file.name).length, 1, JSON.stringify(events));
      assert.deepEqual(events.at(-1), { type: 'complete', successful: 0, failed: 1 });
    } finally {
      await page.close();
    }
  });

  it('uploads a 64 MiB file as multipart and a small file as one POST form, byte for byte', async () => {
    const dir = await tempDir();
    const big = await randomFile(dir, 'uppy-64mib.bin', 64 * MiB);
    const small = await randomFile(dir, 'uppy-small.txt', 150_000 + 7);
    const user = 'uppy-user';
    const { page, problems } = await openUppy(browser, app.url, {
      endpoint: server.url, token: token(user), multipartFrom,
    });
    const requests = [];
    const storeRequests = [];
    const storeOrigin = new URL(server.storeEndpoint).origin;
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.origin === server.url) requests.push(`${r.method()} ${url.pathname.replace(/\/multipart\/[^/]+/, '/multipart/ID')}`);
      if (url.origin === storeOrigin) storeRequests.push(r.method());
    });
    try {
      const events = await uploadAll(page, [big, small]);
      assert.deepEqual(events.at(-1), { type: 'complete', successful: 2, failed: 0 }, JSON.stringify(events.filter((e) => e.type !== 'progress')));
      const success = Object.fromEntries(events.filter((e) => e.type === 'success').map((e) => [e.name, e]));

      // The big file went in 5 MiB parts (Uppy's own part size) and was completed by the server.
      const parts = events.filter((e) => e.type === 'part' && e.name === big.name).map((e) => e.part);
      assert.deepEqual(parts.sort((a, b) => a - b), Array.from({ length: 13 }, (_, i) => i + 1));
      assert.equal(requests.filter((r) => r === 'POST /s3/multipart').length, 1);
      assert.equal(requests.filter((r) => r === 'POST /s3/multipart/ID/complete').length, 1);
      // The small one with the POST policy form /s3/params answers: the store's answer carries
      // the ETag and Location headers Uppy 5 reads (it waits for the ETag forever without it).
      assert.equal(requests.filter((r) => r === 'GET /s3/params').length, 1);
      assert.deepEqual(storeRequests.filter((m) => m !== 'PUT'), ['POST']);
      assert.equal(storeRequests.filter((m) => m === 'PUT').length, 13);

      for (const file of [big, small]) {
        const { body, uploadURL } = success[file.name];
        assert.ok(body.key?.startsWith(`uploads/${user}/`), `${file.name}: the key is under the caller's prefix: ${body.key}`);
        assert.ok(body.key.endsWith(`/${file.name}`), `${file.name}: ${body.key}`);
        assert.ok(uploadURL, `${file.name}: Uppy reports the object's URL`);
        assert.deepEqual(await objectSha256(s3, bucket, body.key), { sha256: file.sha256, size: file.size }, file.name);
      }

      // Uppy's progress for the big file ends at its size.
      const last = events.filter((e) => e.type === 'progress' && e.name === big.name).at(-1);
      assert.deepEqual([last.sent, last.total], [big.size, big.size]);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });
});
