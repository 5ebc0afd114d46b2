// Scale-out: two s3-direct replicas behind one address, on a three-node Garage cluster
// (replication factor 3), with a store node killed half-way through a big upload.
//
// The replicas share the upload secret and the credentials and nothing else; a round-robin
// balancer (tests/lib/balancer.mjs) sends each request to the other replica than the one before,
// so an upload is created, signed and completed by whichever replica the turn falls on. Replica A
// talks to Garage node 1 and replica B to node 2 (`--endpoint`), so the presigned part URLs each
// replica hands out name its own node and the browser's part PUTs are spread over both.
//
// Which node dies: node 3, which no replica and no URL names, but which holds a replica of every
// block (replication factor 3). A presigned URL names one store address, and the client retries a
// failed PUT on the same URL while it is valid: if the node a URL names dies, that part can only
// get through by a re-sign landing on a replica whose node is alive, and the upload fails once the
// retries run out. Surviving the loss of an addressed node takes a store address that outlives its
// nodes (`--public-endpoint` naming a balancer in front of all Garage nodes); see README "Running
// several replicas".
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBalancer } from '../lib/balancer.mjs';
import { launchBrowser, openDemo, waitForRow } from '../lib/browser.mjs';
import { randomFile, tempDir, MiB } from '../lib/files.mjs';
import { garageMissing, startGarage } from '../lib/garage.mjs';
import { allowBrowsers, objectSha256, s3Client } from '../lib/s3.mjs';
import { startServer } from '../lib/server.mjs';

const secret = 'e2e-scale-shared-upload-secret-0123456789abcdef';

describe('two replicas behind a round-robin balancer on a three-node Garage', { skip: garageMissing() ?? false }, () => {
  let garage;
  let browser;
  let replicas = [];
  let balancer;
  /** One S3 client per Garage node, to read objects back through a node of our choice. */
  let s3;

  /** A replica talking to Garage node `node` (1-based) with the shared secret and credentials. */
  function startReplica(node, { uploadSecret = secret } = {}) {
    return startServer({
      args: ['--endpoint', garage.endpoints[node - 1], '--bucket', garage.bucket, '--region', garage.region,
        '--path-style', '--upload-secret', uploadSecret],
      env: { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey },
    });
  }

  before(async () => {
    [garage, browser] = await Promise.all([startGarage({ nodes: 3 }), launchBrowser()]);
    assert.equal(garage.endpoints.length, 3);
    s3 = garage.endpoints.map((endpoint) => s3Client({
      endpoint, region: garage.region, accessKeyId: garage.accessKey, secretAccessKey: garage.secretKey,
    }));
    await allowBrowsers(s3[0], garage.bucket);
    replicas = await Promise.all([startReplica(1), startReplica(2)]);
    balancer = await startBalancer(replicas.map((r) => r.url));
  });

  after(async () => {
    await browser?.close();
    await balancer?.stop();
    await Promise.all(replicas.map((r) => r.stop()));
    await garage?.stop();
  });

  it('an upload created on replica A is signed, listed and completed on replica B', async () => {
    const [a, b] = replicas;
    const size = 6 * MiB + 100;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i += 1) body[i] = (i * 7 + (i >> 12)) & 0xff;
    const call = async (server, method, route, json) => {
      const res = await fetch(`${server.url}/s3/multipart${route}`, {
        method,
        headers: json ? { 'content-type': 'application/json' } : {},
        body: json ? JSON.stringify(json) : undefined,
      });
      return { status: res.status, body: await res.json() };
    };

    const created = await call(a, 'POST', '', {
      filename: 'cross-replica.bin', type: 'application/octet-stream', metadata: {}, size, partSize: 5 * MiB,
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const { key, uploadId } = created.body;
    const q = `key=${encodeURIComponent(key)}`;
    const id = encodeURIComponent(uploadId);

    // A replica with another upload secret is not part of the deployment: it must refuse the token.
    const stranger = await startReplica(2, { uploadSecret: 'a-different-upload-secret-0123456789abcdef' });
    try {
      const refused = await call(stranger, 'GET', `/${id}/batch?${q}&partNumbers=1,2`);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.error, 'invalid_upload_token');
    } finally {
      await stranger.stop();
    }

    const signed = await call(b, 'GET', `/${id}/batch?${q}&partNumbers=1,2`);
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    const parts = [];
    for (const n of [1, 2]) {
      const url = signed.body.presignedUrls[n];
      assert.ok(url.startsWith(`${garage.endpoints[1]}/`), `B signs for its own node: ${url}`);
      const headers = Object.fromEntries(Object.entries({
        ...signed.body.headers, ...(signed.body.partHeaders?.[n] ?? {}),
      }).filter(([h]) => !['content-length', 'host'].includes(h.toLowerCase())));
      const res = await fetch(url, {
        method: 'PUT', headers, body: body.subarray((n - 1) * 5 * MiB, Math.min(size, n * 5 * MiB)),
      });
      assert.equal(res.status, 200, `part ${n}: ${await res.text()}`);
      parts.push({ PartNumber: n, ETag: res.headers.get('etag') });
    }

    const listed = await call(a, 'GET', `/${id}?${q}`);
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.map((p) => [p.PartNumber, p.ETag, p.Size]),
      [[1, parts[0].ETag, 5 * MiB], [2, parts[1].ETag, MiB + 100]]);

    const done = await call(b, 'POST', `/${id}/complete?${q}`, { parts });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.key, key);

    // Replication: node 3, which neither replica talks to, serves the object.
    const stored = await objectSha256(s3[2], garage.bucket, key);
    assert.equal(stored.size, size);
    assert.equal(stored.sha256, createHash('sha256').update(body).digest('hex'));
  });

  it('a 256 MiB upload and a queue of others complete while Garage node 3 is killed half-way', async (t) => {
    const started = Date.now();
    const dir = await tempDir();
    const [big, ...queued] = await Promise.all([
      randomFile(dir, 'big-256MiB.bin', 256 * MiB),
      randomFile(dir, 'queued-12MiB.bin', 12 * MiB + 7),
      randomFile(dir, 'queued-small.txt', 100 * 1024 + 1),
    ]);
    const afterKill = await Promise.all([
      randomFile(dir, 'after-kill-17MiB.bin', 17 * MiB),
      randomFile(dir, 'after-kill-tiny.bin', 1234),
    ]);
    const partSize = 5 * MiB;
    const concurrency = 4;
    const bigParts = Math.ceil(big.size / partSize); // 52
    const half = Math.floor(bigParts / 2); // 26
    const storeHosts = garage.endpoints.map((e) => new URL(e).host);
    const balancedBefore = balancer.log.length;

    const page = await openDemo(browser, balancer.url, { partSize: 5, concurrency, files: 2 });

    // Every part PUT the page sends, by file and part: where it went, how it ended, when.
    const puts = [];
    const partOf = (request) => {
      const url = new URL(request.url());
      if (request.method() !== 'PUT' || !url.searchParams.has('uploadId')) return null;
      return puts.find((p) => p.request === request) ?? null;
    };
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (request.method() !== 'PUT' || !url.searchParams.has('uploadId')) return;
      puts.push({
        request,
        file: decodeURIComponent(path.basename(url.pathname)),
        part: Number(url.searchParams.get('partNumber')),
        host: url.host,
        at: Date.now(),
        outcome: 'pending',
        end: null,
      });
    });
    page.on('requestfinished', async (request) => {
      const put = partOf(request);
      if (!put) return;
      const response = await request.response();
      put.outcome = response?.status() ?? 'no response';
      put.end = Date.now();
    });
    page.on('requestfailed', (request) => {
      const put = partOf(request);
      if (!put) return;
      put.outcome = request.failure()?.errorText ?? 'failed';
      put.end = Date.now();
    });

    // "Half-way" is a fact, not a race: the big file's part PUTs past `half` are held in the
    // browser's network layer until node 3 is dead, so exactly `half` parts are stored before.
    const held = [];
    let holding = true;
    let heldOne;
    const allHeld = new Promise((resolve) => { heldOne = resolve; });
    await page.route((url) => url.searchParams.has('partNumber') && url.pathname.endsWith(`/${big.name}`), (route) => {
      const n = Number(new URL(route.request().url()).searchParams.get('partNumber'));
      if (!holding || n <= half) return route.continue().catch(() => {});
      held.push(route);
      if (held.length >= concurrency) heldOne();
      return undefined;
    });

    const bigRowDone = (n) => page.waitForFunction(([name, want]) => {
      const row = [...document.querySelectorAll('#queue .upload')]
        .find((r) => r.querySelector('.name').textContent === name);
      return row && Number(row.dataset.partsDone ?? 0) >= want;
    }, [big.name, n], { timeout: 300_000, polling: 50 });

    const nodeLogs = [1, 2].map((n) => path.join(garage.dir, 'log', `node${n}.log`));
    let killedAt;
    let logOffsets;
    try {
      await page.setInputFiles('#picker', [big, ...queued].map((f) => f.path));
      await bigRowDone(half);
      await allHeld; // every slot holds a part past the half: nothing more can be stored
      const doneAtKill = await page.evaluate((name) => [...document.querySelectorAll('#queue .upload')]
        .find((r) => r.querySelector('.name').textContent === name).dataset.partsDone, big.name);
      assert.equal(Number(doneAtKill), half, 'exactly half the parts were stored before the kill');

      logOffsets = await Promise.all(nodeLogs.map((f) => readFile(f).then((b) => b.length)));
      await garage.killNode(3);
      killedAt = Date.now();
      await assert.rejects(fetch(garage.endpoints[2]), 'node 3 no longer answers');
      holding = false;
      await Promise.all(held.map((r) => r.continue().catch(() => {})));
      // More files join the queue while the cluster runs on two nodes.
      await page.setInputFiles('#picker', afterKill.map((f) => f.path));

      const files = [big, ...queued, ...afterKill];
      const rows = await Promise.all(files.map((f) => waitForRow(page, f.name, { timeout: 600_000 })));
      const finished = Date.now();
      for (const [i, row] of rows.entries()) {
        assert.equal(row.state, 'done', `${files[i].name}: ${row.detail}`);
      }
      // Read back through the two live nodes: the big object through node 1, the rest through 2.
      for (const [i, row] of rows.entries()) {
        const stored = await objectSha256(i === 0 ? s3[0] : s3[1], garage.bucket, row.key);
        assert.equal(stored.size, files[i].size, `${files[i].name}: stored size`);
        assert.equal(stored.sha256, files[i].sha256, `${files[i].name}: stored SHA-256`);
      }
      assert.deepEqual(page.pageErrors, []);

      // Both replicas served the page's calls, signing included, and each signed URLs for its
      // own node: part PUTs went to nodes 1 and 2, never to the dead node 3.
      const calls = balancer.log.slice(balancedBefore);
      const perReplica = (kind) => [0, 1].map((r) => calls.filter((c) => c.replica === r && c.kind === kind).length);
      const signs = perReplica('sign');
      assert.ok(signs[0] > 0 && signs[1] > 0, `both replicas signed parts: ${signs}`);
      assert.equal(perReplica('create').reduce((x, y) => x + y), files.length, 'one create per file');
      assert.ok(calls.every((c) => c.status !== null && c.status < 500), 'no call failed on a replica');
      const putsTo = storeHosts.map((h) => puts.filter((p) => p.host === h).length);
      assert.ok(putsTo[0] > 0 && putsTo[1] > 0, `part PUTs went to nodes 1 and 2: ${putsTo}`);
      assert.equal(putsTo[2], 0, 'no part PUT named node 3');

      // What the client saw of the dead node: attempts beyond one per part, failures, stalls.
      const bigPuts = puts.filter((p) => p.file === big.name);
      const failed = puts.filter((p) => p.outcome !== 200);
      const extraAttempts = files.map((f) => {
        const mine = puts.filter((p) => p.file === f.name);
        return mine.length - new Set(mine.map((p) => p.part)).size;
      });
      // The longest wait between two stored parts of the big file, before and after the kill.
      const longestGap = (from, to) => {
        const ends = bigPuts.filter((p) => p.outcome === 200 && p.end >= from && p.end <= to)
          .map((p) => p.end).sort((x, y) => x - y);
        let gap = ends.length ? ends[0] - from : 0;
        for (let i = 1; i < ends.length; i += 1) gap = Math.max(gap, ends[i] - ends[i - 1]);
        return gap;
      };
      const logged = await Promise.all(nodeLogs.map(async (f, i) => {
        const text = (await readFile(f)).subarray(logOffsets[i]).toString();
        // Garage colours its log levels; strip the escape codes.
        return text.replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => /\b(ERROR|WARN)\b/.test(l));
      }));
      const report = {
        totalSeconds: (finished - started) / 1000,
        beforeKillSeconds: (killedAt - started) / 1000,
        afterKillSeconds: (finished - killedAt) / 1000,
        partPuts: puts.length,
        putsPerNode: putsTo,
        failedPuts: failed.map((p) => `${p.file}#${p.part}: ${p.outcome}`),
        extraAttemptsPerFile: Object.fromEntries(files.map((f, i) => [f.name, extraAttempts[i]])),
        longestGapBetweenBigPartsMs: { beforeKill: longestGap(bigPuts[0].at, killedAt), afterKill: longestGap(killedAt, finished) },
        callsPerReplica: { sign: signs, create: perReplica('create'), complete: perReplica('complete'),
          all: [0, 1].map((r) => calls.filter((c) => c.replica === r).length) },
        garageLogLinesAfterKill: logged.map((lines) => lines.length),
        garageLogSample: logged.flat().slice(0, 5).map((l) => l.slice(0, 240)),
      };
      t.diagnostic(`scale report: ${JSON.stringify(report)}`);
      if (process.env.S3_DIRECT_TEST_LOG) console.log(JSON.stringify(report, null, 2));
    } finally {
      holding = false;
      await Promise.allSettled(held.map((r) => r.continue()));
      await page.close();
    }
  });
});
