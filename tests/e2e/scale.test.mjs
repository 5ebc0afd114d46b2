// Scale-out: two s3-direct replicas behind one address, on a three-node Garage cluster
// (replication factor 3), with a store node killed half-way through a big upload.
//
// The replicas share the upload secret and the credentials and nothing else; a round-robin
// balancer (tests/lib/balancer.mjs) sends each request to the other replica than the one before,
// so an upload is created, signed and completed by whichever replica the turn falls on. Replica A
// talks to Garage node 1 and replica B to node 2 (`--endpoint`), so the store side is spread too.
//
// Which node dies, and where part URLs point:
// - With no `--public-endpoint`, each replica's presigned URLs name its own node, so the
//   browser's part PUTs go to nodes 1 and 2. Node 3 is killed: no replica and no URL names it,
//   but it holds a copy of every block (replication factor 3), so Garage must carry on with a
//   quorum of two.
// - Killing a node that URLs name is a different matter. A presigned URL names one store address,
//   and the client retries a failed PUT on the same URL while it is still valid, so a part whose
//   URL names a dead node fails every retry and the upload gives up. Seen here with node 1 killed
//   in this setup: every PUT to it was refused (90 of them), and 104 s after the kill the 256 MiB
//   upload failed with "part 27 of 52: PUT failed before the store answered ... gave up after 7
//   attempts (network_error)", as did both files queued after the kill (the two that had finished
//   before it were unaffected). The fix is on the deployment side: browsers get a store
//   address that outlives any one node (`--public-endpoint` naming a front that skips dead
//   nodes; SigV4 signs the Host header, which such a front passes unchanged). The third test
//   kills node 1, which replica A talks to, behind such a front.
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

/**
 * A three-node Garage with the browsers' CORS rule, replicas A (→ node 1) and B (→ node 2) sharing
 * the upload secret and credentials, and a strictly alternating balancer in front of them. With
 * `storeFront`, presigned URLs name a failover front over the three nodes instead of a node.
 */
async function deploy({ storeFront = false } = {}) {
  const garage = await startGarage({ nodes: 3 });
  const d = { garage, replicas: [], stoppers: [() => garage.stop()] };
  try {
    d.s3 = garage.endpoints.map((endpoint) => s3Client({
      endpoint, region: garage.region, accessKeyId: garage.accessKey, secretAccessKey: garage.secretKey,
    }));
    await allowBrowsers(d.s3[0], garage.bucket);
    if (storeFront) {
      d.front = await startBalancer(garage.endpoints, { failover: true });
      d.stoppers.push(() => d.front.stop());
    }
    d.startReplica = (node, { uploadSecret = secret } = {}) => startServer({
      args: ['--endpoint', garage.endpoints[node - 1], '--bucket', garage.bucket, '--region', garage.region,
        '--path-style', '--upload-secret', uploadSecret,
        // The balancer passes the browser's Host (its own address) on; an open server answers
        // only its own loopback address and port unless told.
        '--allowed-host', '127.0.0.1',
        ...(d.front ? ['--public-endpoint', d.front.url] : [])],
      env: { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey },
    });
    d.replicas = await Promise.all([d.startReplica(1), d.startReplica(2)]);
    d.stoppers.push(() => Promise.all(d.replicas.map((r) => r.stop())));
    d.balancer = await startBalancer(d.replicas.map((r) => r.url));
    d.stoppers.push(() => d.balancer.stop());
  } catch (err) {
    for (const stop of d.stoppers.reverse()) await stop().catch(() => {});
    throw err;
  }
  d.stop = async () => {
    for (const stop of d.stoppers.reverse()) await stop();
  };
  return d;
}

/** Lines Garage logged at WARN or ERROR in `file` past byte `offset`. */
async function garageWarnings(file, offset) {
  const text = (await readFile(file)).subarray(offset).toString();
  // Garage colours its log levels; strip the escape codes.
  return text.replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => /\b(ERROR|WARN)\b/.test(l));
}

/**
 * The browser scenario: through the balancer, the demo page uploads a 256 MiB file (5 MiB parts,
 * 4 at once) with two smaller files queued beside it. Once exactly half the big file's parts are
 * stored, Garage node `kill` is SIGKILLed; two more files join the queue; everything must finish
 * and read back byte for byte through a live node. Returns what happened, for the caller's
 * checks and the report.
 */
async function uploadWhileANodeDies({ browser, d, kill }) {
  const { garage, balancer } = d;
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
  const files = [big, ...queued, ...afterKill];
  const concurrency = 4;
  const half = Math.floor(Math.ceil(big.size / (5 * MiB)) / 2); // 26 of 52
  const callsFrom = balancer.log.length;
  const frontFrom = d.front?.log.length ?? 0;
  const live = [1, 2, 3].filter((n) => n !== kill);

  const page = await openDemo(browser, balancer.url, { partSize: 5, concurrency, files: 2 });

  // Every part PUT the page sends: file, part, where it went, how it ended, when.
  const puts = [];
  const isPut = (request) => request.method() === 'PUT' && new URL(request.url()).searchParams.has('uploadId');
  const putOf = (request) => puts.find((p) => p.request === request);
  page.on('request', (request) => {
    if (!isPut(request)) return;
    const url = new URL(request.url());
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
    const put = putOf(request);
    if (!put) return;
    put.end = Date.now();
    put.outcome = (await request.response())?.status() ?? 'no response';
  });
  page.on('requestfailed', (request) => {
    const put = putOf(request);
    if (!put) return;
    put.end = Date.now();
    put.outcome = request.failure()?.errorText ?? 'failed';
  });

  // "Half-way" is a fact, not a race: the big file's part PUTs past `half` are held in the
  // browser's network layer until the node is dead, so exactly `half` parts are stored before.
  const held = [];
  let holding = true;
  let slotsHeld;
  const allSlotsHeld = new Promise((resolve) => { slotsHeld = resolve; });
  await page.route((url) => url.searchParams.has('partNumber') && url.pathname.endsWith(`/${big.name}`), (route) => {
    const n = Number(new URL(route.request().url()).searchParams.get('partNumber'));
    if (!holding || n <= half) return route.continue().catch(() => {});
    held.push(route);
    if (held.length >= concurrency) slotsHeld();
    return undefined;
  });
  const partsDone = () => page.evaluate((name) => Number([...document.querySelectorAll('#queue .upload')]
    .find((r) => r.querySelector('.name').textContent === name)?.dataset.partsDone ?? 0), big.name);

  const logs = live.map((n) => path.join(garage.dir, 'log', `node${n}.log`));
  try {
    await page.setInputFiles('#picker', [big, ...queued].map((f) => f.path));
    await page.waitForFunction(([name, want]) => {
      const row = [...document.querySelectorAll('#queue .upload')]
        .find((r) => r.querySelector('.name').textContent === name);
      return row && Number(row.dataset.partsDone ?? 0) >= want;
    }, [big.name, half], { timeout: 300_000, polling: 50 });
    await allSlotsHeld; // every slot holds a part past the half: nothing more can be stored
    assert.equal(await partsDone(), half, 'exactly half the parts were stored before the kill');

    const logOffsets = await Promise.all(logs.map((f) => readFile(f).then((b) => b.length)));
    await garage.killNode(kill);
    const killedAt = Date.now();
    await assert.rejects(fetch(garage.endpoints[kill - 1]), `node ${kill} no longer answers`);
    holding = false;
    await Promise.all(held.map((r) => r.continue().catch(() => {})));
    // More files join the queue while the cluster runs on two nodes.
    await page.setInputFiles('#picker', afterKill.map((f) => f.path));

    const rows = await Promise.all(files.map((f) => waitForRow(page, f.name, { timeout: 600_000 })));
    const finished = Date.now();
    for (const [i, row] of rows.entries()) {
      assert.equal(row.state, 'done', `${files[i].name}: ${row.detail}`);
    }
    // Read back through the live nodes, the big object through one, the others through the other.
    for (const [i, row] of rows.entries()) {
      const stored = await objectSha256(d.s3[live[i === 0 ? 0 : 1] - 1], garage.bucket, row.key);
      assert.equal(stored.size, files[i].size, `${files[i].name}: stored size`);
      assert.equal(stored.sha256, files[i].sha256, `${files[i].name}: stored SHA-256`);
    }
    assert.deepEqual(page.pageErrors, []);

    // Both replicas served the page, signing included; each file was created once.
    const calls = balancer.log.slice(callsFrom);
    const perReplica = (kind) => balancer.counts(kind, callsFrom);
    const signs = perReplica('sign');
    assert.ok(signs[0] > 0 && signs[1] > 0, `both replicas signed parts: ${signs}`);
    const creates = perReplica('create');
    assert.equal(calls.filter((c) => c.kind === 'create' && c.status === 200).length, files.length,
      'one successful create per file');

    // What the client saw of the dead node: attempts beyond one per part, failures, stalls.
    const bigPuts = puts.filter((p) => p.file === big.name);
    const longestGap = (from, to) => {
      const ends = bigPuts.filter((p) => p.outcome === 200 && p.end >= from && p.end <= to)
        .map((p) => p.end).sort((x, y) => x - y);
      let gap = ends.length ? ends[0] - from : 0;
      for (let i = 1; i < ends.length; i += 1) gap = Math.max(gap, ends[i] - ends[i - 1]);
      return gap;
    };
    const warnings = await Promise.all(logs.map((f, i) => garageWarnings(f, logOffsets[i])));
    const report = {
      killedNode: kill,
      totalSeconds: (finished - started) / 1000,
      beforeKillSeconds: (killedAt - started) / 1000,
      afterKillSeconds: (finished - killedAt) / 1000,
      partPuts: puts.length,
      failedPuts: puts.filter((p) => p.outcome !== 200).map((p) => `${p.file}#${p.part}: ${p.outcome}`),
      extraAttemptsPerFile: Object.fromEntries(files.map((f) => {
        const mine = puts.filter((p) => p.file === f.name);
        return [f.name, mine.length - new Set(mine.map((p) => p.part)).size];
      })),
      longestGapBetweenBigPartsMs: {
        beforeKill: longestGap(bigPuts[0].at, killedAt), afterKill: longestGap(killedAt, finished),
      },
      callsPerReplica: {
        sign: signs, create: creates, complete: perReplica('complete'),
        all: balancer.counts(undefined, callsFrom),
        failed: calls.filter((c) => c.status === null || c.status >= 500).map((c) => `${c.kind}@${c.replica}: ${c.status}`),
      },
      garageWarningsAfterKill: Object.fromEntries(live.map((n, i) => [`node${n}`, warnings[i].length])),
      garageWarningSample: warnings.flat().slice(0, 4).map((l) => l.slice(0, 200)),
    };
    if (d.front) {
      const front = d.front.log.slice(frontFrom);
      report.storeFront = {
        requestsPerNode: [0, 1, 2].map((n) => front.filter((e) => e.replica === n).length),
        skippedDeadNode: front.filter((e) => e.skipped.includes(kill - 1)).length,
        failed: front.filter((e) => e.status === null || e.status >= 500).length,
      };
    }
    return { files, rows, puts, calls, killedAt, report };
  } finally {
    holding = false;
    await Promise.allSettled(held.map((r) => r.continue()));
    await page.close();
  }
}

describe('two replicas behind a round-robin balancer on a three-node Garage', { skip: garageMissing() ?? false }, () => {
  let browser;
  let d;

  before(async () => {
    [d, browser] = await Promise.all([deploy(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close();
    await d?.stop();
  });

  it('an upload created on replica A is signed, listed and completed on replica B', async () => {
    const [a, b] = d.replicas;
    const { garage } = d;
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
    const stranger = await d.startReplica(2, { uploadSecret: 'a-different-upload-secret-0123456789abcdef' });
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
    const stored = await objectSha256(d.s3[2], garage.bucket, key);
    assert.equal(stored.size, size);
    assert.equal(stored.sha256, createHash('sha256').update(body).digest('hex'));
  });

  it('a 256 MiB upload and a queue of others complete while Garage node 3 is killed half-way', async (t) => {
    const { puts, calls, report } = await uploadWhileANodeDies({ browser, d, kill: 3 });
    // No replica lost its node: no call may fail. Each replica signed URLs for its own node, so
    // part PUTs went to nodes 1 and 2 and never to node 3.
    assert.deepEqual(calls.filter((c) => c.status === null || c.status >= 500), [], 'no call failed on a replica');
    const hosts = d.garage.endpoints.map((e) => new URL(e).host);
    const putsTo = hosts.map((h) => puts.filter((p) => p.host === h).length);
    assert.ok(putsTo[0] > 0 && putsTo[1] > 0, `part PUTs went to nodes 1 and 2: ${putsTo}`);
    assert.equal(putsTo[2], 0, 'no part PUT named node 3');
    report.putsPerNode = putsTo;
    t.diagnostic(`scale report: ${JSON.stringify(report)}`);
  });
});

describe('two replicas on a three-node Garage whose URLs name a store front', { skip: garageMissing() ?? false }, () => {
  let browser;
  let d;

  before(async () => {
    [d, browser] = await Promise.all([deploy({ storeFront: true }), launchBrowser()]);
  });

  after(async () => {
    await browser?.close();
    await d?.stop();
  });

  it('killing node 1, which replica A talks to, half-way through a 256 MiB upload loses nothing', async (t) => {
    const { puts, report } = await uploadWhileANodeDies({ browser, d, kill: 1 });
    const frontHost = new URL(d.front.url).host;
    assert.ok(puts.every((p) => p.host === frontHost), 'every part URL names the store front');
    // The front spread the part PUTs over the nodes, and after the kill skipped the dead one.
    const perNode = report.storeFront.requestsPerNode;
    assert.ok(perNode.every((n) => n > 0), `the front spread requests over the nodes: ${perNode}`);
    assert.ok(report.storeFront.skippedDeadNode > 0, 'the front skipped the dead node');
    t.diagnostic(`scale report: ${JSON.stringify(report)}`);
  });
});

describe('the test balancer', () => {
  /** Loopback servers answering `index:bytes received`, and a port that refuses connections. */
  async function backends(n) {
    const http = await import('node:http');
    const servers = await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve) => {
      const s = http.createServer((req, res) => {
        let bytes = 0;
        req.on('data', (chunk) => { bytes += chunk.length; });
        req.on('end', () => res.end(`${i}:${bytes}`));
      });
      s.listen(0, '127.0.0.1', () => resolve(s));
    })));
    return {
      urls: servers.map((s) => `http://127.0.0.1:${s.address().port}`),
      close: () => Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); }))),
    };
  }
  const deadUrl = async () => {
    const net = await import('node:net');
    const s = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => { s.once('listening', r); });
    const url = `http://127.0.0.1:${s.address().port}`;
    await new Promise((r) => { s.close(r); });
    return url;
  };

  it('alternates strictly per request, even on one kept-alive connection, and names signing calls', async () => {
    const b = await backends(2);
    const lb = await startBalancer(b.urls);
    try {
      const seen = [];
      for (const route of ['/', '/s3/multipart/u.t/batch?key=k&partNumbers=1', '/s3/multipart/u.t/3?key=k',
        '/s3/multipart/u.t?key=k', '/pkg/x.js']) {
        seen.push(await (await fetch(lb.url + route)).text());
      }
      const created = await fetch(`${lb.url}/s3/multipart`, { method: 'POST', body: '{}' });
      seen.push(await created.text());
      assert.deepEqual(seen, ['0:0', '1:0', '0:0', '1:0', '0:0', '1:2']);
      assert.deepEqual(lb.log.map((e) => e.kind), ['other', 'sign', 'sign', 'list', 'other', 'create']);
      assert.deepEqual(lb.counts('sign'), [1, 1]);
      assert.deepEqual(lb.counts(), [3, 3]);
      assert.deepEqual(lb.counts(undefined, 4), [1, 1]);
    } finally {
      await lb.stop();
      await b.close();
    }
  });

  it('answers 502 for a dead target, or with failover skips it without losing the body', async () => {
    const b = await backends(1);
    const dead = await deadUrl();
    const strict = await startBalancer([dead, b.urls[0]]);
    const front = await startBalancer([dead, b.urls[0]], { failover: true });
    try {
      assert.equal((await fetch(strict.url)).status, 502);
      assert.equal(await (await fetch(strict.url)).text(), '0:0');
      const body = Buffer.alloc(3 * MiB, 7);
      for (let i = 0; i < 2; i += 1) {
        const res = await fetch(front.url, { method: 'PUT', body });
        assert.equal(res.status, 200);
        assert.equal(await res.text(), `0:${body.length}`);
      }
      assert.deepEqual(front.log.map((e) => [e.replica, e.skipped]), [[1, [0]], [1, []]]);
    } finally {
      await strict.stop();
      await front.stop();
      await b.close();
    }
  });
});
