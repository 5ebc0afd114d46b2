// Uppy 6 compatibility: @uppy/core 6 + @uppy/aws-s3 6 (npm aliases uppy6-core / uppy6-aws-s3,
// next to Uppy 5 in tests/package.json), configured with `companionEndpoint` pointing at s3-direct,
// upload through the Companion-compatible /s3 routes: a 24 MiB file as a multipart upload
// (sign each part, PUT it, complete) and a small file through GET /s3/params and a POST policy
// form to the store. The page is bundled from tests/uppy6/main.js with esbuild aliases that map
// @uppy/core (and its subpaths) and @uppy/aws-s3 to the Uppy 6 packages; the first case checks
// that nothing of Uppy 5 got in. Uppy 6 sends no Authorization header in this mode, so the server
// runs with `--auth open`; the page is served from another origin, so the API's CORS is
// exercised. Objects are read back through S3 and compared by SHA-256.
//
// The second suite is the set-up the README gives Uppy 6 users who need sign-in: the signing API
// served from the application's own origin (a path the application proxies to s3-direct, with
// `--route-prefix`), `--auth webhook`, and the application's session cookie, which Uppy 6 sends
// to its own origin only. The application here is a small Node server: the page, the proxy and
// the webhook, which knows two sessions.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { launchBrowser } from '../lib/browser.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from '../lib/server.mjs';
import { bundlePage, openUppy, serveFiles, uploadAll } from '../lib/uppy.mjs';

const bucket = 's3-direct';
const keyPrefix = 'uppy6-uploads/';
const multipartFrom = 8 * MiB;
/** Uppy 6's part size when `getChunkSize` is not set: max(5 MiB, ceil(size / 10,000)). */
const uppyPartSize = 5 * MiB;
const uppy6 = { '@uppy/core': 'uppy6-core', '@uppy/aws-s3': 'uppy6-aws-s3' };

async function installedVersion(pkg) {
  const file = path.join(repoRoot, 'tests/node_modules', pkg, 'package.json');
  return JSON.parse(await readFile(file, 'utf8')).version;
}

/**
 * Records the page's requests to the signing server and to the store in the order they were sent:
 * `what` is "METHOD /path" for the server (upload ids as ID) and "METHOD store" for the store.
 * `settleTraffic` then adds each one's status (or failure) and, for the server's answers and the
 * store's failures, the answer's text.
 */
function recordTraffic(page, server) {
  const storeOrigin = new URL(server.storeEndpoint).origin;
  const log = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.origin === server.url) {
      const what = `${request.method()} ${url.pathname.replace(/\/multipart\/[^/]+/, '/multipart/ID')}`;
      log.push({ what, to: 'server', url, sent: request.postData(), request });
    } else if (url.origin === storeOrigin) {
      log.push({ what: `${request.method()} store`, to: 'store', url, request });
    }
  });
  return log;
}

/** Waits for the recorded requests' answers (all are over once Uppy reported `complete`). */
async function settleTraffic(log) {
  for (const e of log) {
    const response = await e.request.response();
    if (!response) {
      e.failure = e.request.failure()?.errorText ?? 'no response';
      continue;
    }
    e.status = response.status();
    if (e.to === 'server' || e.status >= 300) {
      e.answer = await response.text().catch((err) => `(no body: ${err.message})`);
    }
  }
}

/** The recorded traffic as lines for an assertion message. */
function describeTraffic(log) {
  return log.map((e) => {
    const query = e.to === 'server' ? e.url.search : '';
    const answer = e.answer ? ` ${e.answer.slice(0, 600)}` : '';
    return `  ${e.what}${query} -> ${e.failure ?? e.status}${answer}`;
  }).join('\n');
}

const json = (e) => JSON.parse(e.answer);

/**
 * Opens the page at `appUrl` with Uppy set up by `config` (after setting `cookies`), uploads
 * `files`, and returns Uppy's events, the page's requests to `api.url` (the signing API) and to
 * `api.storeEndpoint` with their answers, and the page's problems.
 */
async function uploadFrom(browser, appUrl, { config, cookies, api }, files) {
  const { page, problems } = await openUppy(browser, appUrl, config, { cookies });
  const traffic = recordTraffic(page, api);
  try {
    const events = await uploadAll(page, files);
    await settleTraffic(traffic);
    return { events, traffic, problems, story: describeTraffic(traffic) };
  } finally {
    await page.close();
  }
}

describe('Uppy 6 (@uppy/core 6 + @uppy/aws-s3 6 with companionEndpoint) against s3-direct', () => {
  let browser;
  let server;
  let app;
  let s3;
  let bundled;

  before(async () => {
    const { files, inputs } = await bundlePage('uppy6', await tempDir('s3-direct-uppy6-'), { alias: uppy6 });
    bundled = inputs;
    app = await serveFiles(files);
    [browser, server] = await Promise.all([
      launchBrowser(),
      startServer({ args: ['--auth', 'open', '--cors-origin', app.url, '--key-prefix', keyPrefix] }),
    ]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await app?.close();
  });

  const head = (key) => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));

  /** Opens the page, uploads `files` and returns the events, the traffic and the page's problems. */
  const upload = (files, config = {}) => uploadFrom(browser, app.url, {
    config: { companionEndpoint: server.url, multipartFrom, ...config }, api: server,
  }, files);

  const successes = (events) => Object.fromEntries(events.filter((e) => e.type === 'success').map((e) => [e.name, e]));
  const outcome = (events) => JSON.stringify(events.filter((e) => e.type !== 'progress'));

  it('the page runs Uppy 6 only: core and aws-s3 6, nothing of the Uppy 5 packages', async () => {
    const fromUppy5 = bundled.filter((p) => p.startsWith('node_modules/@uppy/'));
    assert.deepEqual(fromUppy5, [], 'no module of node_modules/@uppy (Uppy 5) is in the bundle');
    for (const pkg of ['uppy6-core', 'uppy6-aws-s3']) {
      assert.ok(bundled.some((p) => p.startsWith(`node_modules/${pkg}/`)), `${pkg} is bundled`);
    }
    const { page, problems } = await openUppy(browser, app.url, { companionEndpoint: server.url, multipartFrom });
    try {
      const versions = await page.evaluate(() => window.uppyVersions);
      assert.deepEqual(versions, {
        core: await installedVersion('uppy6-core'),
        awsS3: await installedVersion('uppy6-aws-s3'),
      });
      assert.equal(versions.core.split('.')[0], '6');
      assert.equal(versions.awsS3.split('.')[0], '6');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  it('uploads a 24 MiB file as multipart, byte for byte, under the server key prefix', async () => {
    const big = await randomFile(await tempDir(), 'uppy6-24mib.bin', 24 * MiB);
    const { events, traffic, problems, story } = await upload([big]);
    assert.deepEqual(events.at(-1), { type: 'complete', successful: 1, failed: 0 }, `${outcome(events)}\n${story}`);
    const { body, uploadURL } = successes(events)[big.name];

    // Uppy's own part size decides the parts; each one was signed, PUT and reported.
    const partCount = Math.ceil(big.size / uppyPartSize);
    assert.equal(partCount, 5);
    const numbers = Array.from({ length: partCount }, (_, i) => i + 1);
    const parts = events.filter((e) => e.type === 'part' && e.name === big.name).map((e) => e.part);
    assert.deepEqual(parts.sort((a, b) => a - b), numbers, story);
    const calls = (what) => traffic.filter((e) => e.what === what);
    const signed = traffic.filter((e) => /^GET \/s3\/multipart\/ID\/\d+$/.test(e.what)).map((e) => Number(e.what.split('/').at(-1)));
    assert.deepEqual(signed.sort((a, b) => a - b), numbers, story);
    assert.equal(traffic.filter((e) => e.what === 'PUT store' && e.status === 200).length, partCount, story);
    assert.equal(calls('GET /s3/params').length, 0, story);

    // One create, with the file's name and type; one completion, whose answer Uppy reports.
    const creates = calls('POST /s3/multipart');
    assert.equal(creates.length, 1, story);
    const [create] = creates;
    const sent = JSON.parse(create.sent);
    assert.deepEqual([sent.filename, sent.type], [big.name, 'application/octet-stream']);
    const created = json(create);
    const completes = calls('POST /s3/multipart/ID/complete');
    assert.equal(completes.length, 1, story);
    const completed = json(completes[0]);

    assert.equal(body.key, created.key, 'the key Uppy reports is the one the server issued');
    assert.equal(body.key, completed.key);
    assert.equal(uploadURL, completed.location, 'Uppy reports the completion\'s location as the URL');
    assert.ok(body.key.startsWith(keyPrefix), `the key is under the server's key prefix: ${body.key}`);
    assert.ok(body.key.endsWith(`/${big.name}`), body.key);
    assert.deepEqual(await objectSha256(s3, bucket, body.key), { sha256: big.sha256, size: big.size });

    // Uppy's progress ends at the file's size.
    const last = events.filter((e) => e.type === 'progress' && e.name === big.name).at(-1);
    assert.deepEqual([last.sent, last.total], [big.size, big.size]);
    assert.deepEqual(problems, []);
  });

  it('uploads a small file through GET /s3/params and a POST policy form to the store', async () => {
    const small = await randomFile(await tempDir(), 'uppy6-small.txt', 150_000 + 7);
    const { events, traffic, problems, story } = await upload([small]);
    assert.deepEqual(events.at(-1), { type: 'complete', successful: 1, failed: 0 }, `${outcome(events)}\n${story}`);
    const { body, uploadURL } = successes(events)[small.name];

    const params = traffic.filter((e) => e.what === 'GET /s3/params');
    assert.equal(params.length, 1, story);
    assert.equal(params[0].url.searchParams.get('filename'), small.name);
    assert.equal(params[0].url.searchParams.get('type'), 'text/plain');
    const stored = traffic.filter((e) => e.to === 'store');
    assert.deepEqual(stored.map((e) => e.what), ['POST store'], story);
    assert.ok(stored[0].status >= 200 && stored[0].status < 300, story);
    assert.equal(traffic.filter((e) => e.what.startsWith('POST /s3/multipart')).length, 0, story);

    const { fields } = json(params[0]);
    assert.equal(body.key, fields.key, 'the key Uppy reports is the form\'s');
    assert.ok(body.key.startsWith(keyPrefix), `the key is under the server's key prefix: ${body.key}`);
    assert.ok(body.key.endsWith(`/${small.name}`), body.key);
    assert.ok(uploadURL?.endsWith(`/${body.key}`), `Uppy reports the object's URL: ${uploadURL}`);
    assert.deepEqual(await objectSha256(s3, bucket, body.key), { sha256: small.sha256, size: small.size });
    assert.equal((await head(body.key)).ContentType, 'text/plain');
    assert.deepEqual(problems, []);
  });

  it('sends a file\'s allowed Uppy meta fields as the object\'s x-amz-meta, multipart and single', async (t) => {
    const dir = await tempDir();
    const big = await randomFile(dir, 'uppy6-meta.bin', 9 * MiB);
    const small = await randomFile(dir, 'uppy6-meta.txt', 4096);
    const meta = {
      [big.name]: { caption: 'holiday video, part 1', secret: 'not sent' },
      [small.name]: { caption: 'notes from the trip', secret: 'not sent' },
    };
    const { events, traffic, story } = await upload([big, small], { allowedMetaFields: ['caption'], meta });
    const success = successes(events);

    await t.test('multipart: the create call carries the field and the object has it', async () => {
      const creates = traffic.filter((e) => e.what === 'POST /s3/multipart');
      assert.equal(creates.length, 1, story);
      const [create] = creates;
      assert.deepEqual(JSON.parse(create.sent).metadata, { caption: meta[big.name].caption });
      assert.ok(success[big.name], `${outcome(events)}\n${story}`);
      assert.deepEqual((await head(success[big.name].body.key)).Metadata, { caption: meta[big.name].caption });
    });

    await t.test('single: GET /s3/params carries metadata[caption] and the object has it', async () => {
      const calls = traffic.filter((e) => e.what === 'GET /s3/params');
      assert.equal(calls.length, 1, story);
      const [params] = calls;
      assert.equal(params.url.searchParams.get('metadata[caption]'), meta[small.name].caption);
      assert.equal(params.url.searchParams.get('metadata[secret]'), null);
      assert.ok(success[small.name], `${outcome(events)}\n${story}`);
      const object = success[small.name].body.key;
      assert.deepEqual(await objectSha256(s3, bucket, object), { sha256: small.sha256, size: small.size });
      assert.deepEqual((await head(object)).Metadata, { caption: meta[small.name].caption });
    });
  });
});

/**
 * The application of the webhook suite, on its own loopback port: the page's files, `/upload/…`
 * proxied to s3-direct (set `target` once it runs), and `POST /auth`, the authorization webhook,
 * which answers from `sessions` (the `session` cookie's value → the principal) and records every
 * question in `questions` with the cookie it came with.
 */
async function application(files, sessions) {
  const app = { target: null, questions: [] };
  const webhook = (req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const session = /(?:^|;\s*)session=([^;]*)/.exec(req.headers.cookie ?? '')?.[1];
      app.questions.push({ ...JSON.parse(body), session });
      const principal = sessions[session];
      if (!principal) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(principal));
    });
  };
  const proxy = (req, res) => {
    const url = new URL(req.url, app.target);
    const upstream = http.request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', (err) => res.writeHead(502).end(err.message));
    req.pipe(upstream);
  };
  const served = await serveFiles(files, (req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    if (req.method === 'POST' && pathname === '/auth') {
      webhook(req, res);
      return true;
    }
    if (pathname.startsWith('/upload/')) {
      proxy(req, res);
      return true;
    }
    return false;
  });
  return Object.assign(app, served);
}

describe('Uppy 6 behind the application\'s origin, with --auth webhook and the session cookie', () => {
  const alice = { id: 'alice', key_prefix: 'alice/' };
  // A user whose uploads the application caps at 100,000 bytes.
  const bob = { id: 'bob', key_prefix: 'bob/', max_size: 100_000 };
  let browser;
  let server;
  let app;
  let s3;

  before(async () => {
    const { files } = await bundlePage('uppy6', await tempDir('s3-direct-uppy6-webhook-'), { alias: uppy6 });
    app = await application(files, { 'alice-session': alice, 'bob-session': bob });
    [browser, server] = await Promise.all([
      launchBrowser(),
      startServer({
        args: [
          '--auth', 'webhook', '--webhook-url', `${app.url}/auth`,
          '--route-prefix', '/upload/s3', '--key-prefix', keyPrefix,
        ],
      }),
    ]);
    app.target = server.url;
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await app?.close();
  });

  /** Keys stored under the server's key prefix. */
  async function storedKeys() {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: keyPrefix }));
    return (listed.Contents ?? []).map((o) => o.Key);
  }

  /** Uploads `files` from the page with `session` as the cookie (none when null). */
  const upload = (files, session) => uploadFrom(browser, app.url, {
    config: { companionEndpoint: `${app.url}/upload`, multipartFrom },
    cookies: session ? [{ name: 'session', value: session }] : [],
    // The API is the application's origin now: record its requests.
    api: { url: app.url, storeEndpoint: server.storeEndpoint },
  }, files);

  it('a signed-in user uploads a multipart file and a form-posted one into their folder', async () => {
    const dir = await tempDir();
    const big = await randomFile(dir, 'webhook-12mib.bin', 12 * MiB);
    const small = await randomFile(dir, 'webhook-small.txt', 30_000);
    app.questions.length = 0;
    const { events, traffic, problems, story } = await upload([big, small], 'alice-session');
    assert.deepEqual(events.at(-1), { type: 'complete', successful: 2, failed: 0 }, `${JSON.stringify(events.filter((e) => e.type !== 'progress'))}\n${story}`);
    const success = Object.fromEntries(events.filter((e) => e.type === 'success').map((e) => [e.name, e.body.key]));

    // Every call went to the application's origin, under its path; none to s3-direct's own port.
    const apiCalls = traffic.filter((e) => e.to === 'server');
    assert.ok(apiCalls.length >= 6, story);
    assert.ok(apiCalls.every((e) => e.url.pathname.startsWith('/upload/s3/')), story);
    assert.ok(apiCalls.every((e) => e.status === 200), story);

    // The webhook was asked, each time with the session: the creates with what they create.
    assert.ok(app.questions.length > 0);
    assert.ok(app.questions.every((q) => q.session === 'alice-session'), JSON.stringify(app.questions));
    const creates = app.questions.filter((q) => q.action === 'create').map((q) => q.create.filename).sort();
    assert.deepEqual(creates, [big.name, small.name].sort(), JSON.stringify(app.questions));

    // The objects are in alice's folder under the server's prefix, byte for byte.
    for (const f of [big, small]) {
      assert.ok(success[f.name]?.startsWith(`${keyPrefix}alice/`), `${f.name}: ${success[f.name]}`);
      assert.deepEqual(await objectSha256(s3, bucket, success[f.name]), { sha256: f.sha256, size: f.size });
    }
    assert.deepEqual(problems, []);
  });

  it('without a session, or with one the application does not know, nothing is stored', async (t) => {
    const dir = await tempDir();
    const before = await storedKeys();
    for (const session of [null, 'mallory-session']) {
      await t.test(session ? 'an unknown session: the webhook answers 401' : 'no cookie: refused before the webhook', async () => {
        const big = await randomFile(dir, `refused-${session}.bin`, 12 * MiB);
        const small = await randomFile(dir, `refused-${session}.txt`, 1000);
        app.questions.length = 0;
        const { events, traffic, story } = await upload([big, small], session);
        assert.deepEqual(events.at(-1), { type: 'complete', successful: 0, failed: 2 }, story);
        const apiCalls = traffic.filter((e) => e.to === 'server');
        assert.deepEqual(apiCalls.map((e) => e.status).sort(), [401, 401], story);
        assert.deepEqual(traffic.filter((e) => e.to === 'store'), [], story);
        const asked = app.questions.map((q) => q.session);
        if (session) {
          // The webhook's 401 is kept a few seconds per credentials (--webhook-deny-cache-ttl): the
          // second file's call is answered from it, unless both calls were out at once.
          assert.ok(asked.length >= 1 && asked.length <= 2 && asked.every((s) => s === session),
            `webhook asked ${JSON.stringify(asked)}`);
        } else {
          assert.deepEqual(asked, []);
        }
      });
    }
    assert.deepEqual(await storedKeys(), before);
  });

  it('the application\'s size limit holds a form-posted file: the store refuses the one too big', async () => {
    const dir = await tempDir();
    const fits = await randomFile(dir, 'bob-fits.txt', 100_000);
    const tooBig = await randomFile(dir, 'bob-too-big.txt', 100_001);
    const before = await storedKeys();
    const { events, traffic, story } = await upload([fits, tooBig], 'bob-session');
    assert.deepEqual(events.at(-1), { type: 'complete', successful: 1, failed: 1 }, story);
    const success = events.filter((e) => e.type === 'success');
    assert.deepEqual(success.map((e) => e.name), [fits.name]);
    const key = success[0].body.key;
    assert.ok(key.startsWith(`${keyPrefix}bob/`), key);
    assert.deepEqual(await objectSha256(s3, bucket, key), { sha256: fits.sha256, size: fits.size });

    // Both got a form (Uppy sends no size); the store took one and refused the other.
    const params = traffic.filter((e) => e.what === 'GET /upload/s3/params');
    assert.equal(params.length, 2, story);
    const posts = traffic.filter((e) => e.what === 'POST store').map((e) => e.status).sort();
    assert.equal(posts.length, 2, story);
    assert.ok(posts[0] >= 200 && posts[0] < 300 && posts[1] >= 400, story);
    assert.deepEqual((await storedKeys()).filter((k) => !before.includes(k)), [key]);
  });
});
