// Part checksums, end to end. The client hashes each part in its Web Worker, streamed chunk by
// chunk through the module's incremental hasher (`ChecksumStream`), and signs the sum into the
// part's URL, so the store checks the bytes it receives against it.
//
// 1. The incremental hasher, loaded in Node from the built package's checksum module (the page's
//    module holds no hasher): the algorithms' standard vectors, the same sums whatever the chunk
//    boundaries, and S3's composite checksum of part checksums.
// 2. A single-node Garage, which verifies Content-MD5 and x-amz-checksum-crc32/crc32c/sha256:
//    for each algorithm a part whose bytes no longer match its sum is refused; refused once, it is
//    sent again and the stored object equals the file; the sums the client reports equal the
//    ones computed here.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openDemo, waitForRow } from '../lib/browser.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { garageMissing, startGarage } from '../lib/garage.mjs';
import { startProxy } from '../lib/proxy.mjs';
import { checksumsInAWorker, compositeChecksum, corruptedBodyIsRefusedAndResent } from '../lib/resilience.mjs';
import { allowBrowsers, objectSha256, s3Client, storedChecksum } from '../lib/s3.mjs';
import { repoRoot, startServer } from '../lib/server.mjs';

const pkg = path.join(repoRoot, 'wasm-client/pkg');

describe('the incremental part hasher (ChecksumStream)', () => {
  let ChecksumStream;
  let compositeChecksum;

  before(async () => {
    const glue = await import(path.join(pkg, 's3_direct_checksum.js'));
    glue.initSync({ module: await readFile(path.join(pkg, 's3_direct_checksum_bg.wasm')) });
    ({ ChecksumStream, compositeChecksum } = glue);
  });

  it('lives in the checksum module only: the page module has no hashing code', async () => {
    const page = await import(path.join(pkg, 's3_direct.js'));
    assert.equal(page.ChecksumStream, undefined);
    const wasm = await WebAssembly.compile(await readFile(path.join(pkg, 's3_direct_bg.wasm')));
    const exports = WebAssembly.Module.exports(wasm).map((e) => e.name);
    assert.deepEqual(exports.filter((name) => /checksumstream/i.test(name)), []);
  });

  /** The base64 sum of `bytes` fed to one hasher in pieces of the given sizes (repeated). */
  function streamed(algorithm, bytes, sizes = [bytes.length || 1]) {
    const hasher = new ChecksumStream(algorithm);
    for (let at = 0, i = 0; at < bytes.length; i += 1) {
      const n = sizes[i % sizes.length];
      hasher.update(bytes.subarray(at, at + n));
      at += n;
    }
    return hasher.finish();
  }
  const b64 = (hex) => Buffer.from(hex, 'hex').toString('base64');
  const text = (s) => new TextEncoder().encode(s);

  it('matches the standard vectors of MD5, SHA-256, CRC32 and CRC32C', () => {
    assert.equal(streamed('md5', text('')), b64('d41d8cd98f00b204e9800998ecf8427e'));
    assert.equal(streamed('md5', text('abc')), b64('900150983cd24fb0d6963f7d28e17f72'));
    assert.equal(streamed('sha256', text('abc')), b64('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'));
    assert.equal(
      streamed('sha256', text('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
      b64('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'),
    );
    assert.equal(
      streamed('sha256', new Uint8Array(1_000_000).fill(0x61), [4096]),
      b64('cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0'),
    );
    // The CRC "check" values (the sum of the ASCII digits 1..9), big-endian as S3 encodes them.
    assert.equal(streamed('crc32', text('123456789')), b64('cbf43926'));
    assert.equal(streamed('crc32c', text('123456789')), b64('e3069283'));
    assert.equal(streamed('CRC32C', text('123456789'), [1, 2]), b64('e3069283'), 'names are case-insensitive');
  });

  it('gives the same sum for any chunk boundaries, equal to a one-shot hash', () => {
    const data = new Uint8Array(3 * 65536 + 12345);
    for (let i = 0; i < data.length; i += 1) data[i] = (i * 7919 + (i >>> 11)) & 0xff;
    const want = {
      md5: createHash('md5').update(data).digest('base64'),
      sha256: createHash('sha256').update(data).digest('base64'),
      crc32: Buffer.from(crc32(data).toString(16).padStart(8, '0'), 'hex').toString('base64'),
      crc32c: streamed('crc32c', data),
    };
    // Odd sizes straddle the hashes' 64-byte blocks and the CRCs' word loops.
    for (const sizes of [[1], [3, 61], [63], [64], [65], [4095, 1, 4097], [65537], [1 << 20]]) {
      for (const [algorithm, sum] of Object.entries(want)) {
        assert.equal(streamed(algorithm, data, sizes), sum, `${algorithm} in pieces of ${sizes}`);
      }
    }
  });

  it('refuses an unknown algorithm by name', () => {
    assert.throws(() => new ChecksumStream('crc64'), /unknown checksum algorithm "crc64"/);
  });

  it("computes S3's composite checksum: the checksum of the parts' raw checksums", () => {
    const parts = [Buffer.from('first part'), Buffer.from('second'), Buffer.alloc(0)];
    for (const algorithm of ['md5', 'sha256']) {
      const sums = parts.map((p) => createHash(algorithm).update(p).digest('base64'));
      const raw = Buffer.concat(sums.map((s) => Buffer.from(s, 'base64')));
      assert.equal(compositeChecksum(algorithm, sums), createHash(algorithm).update(raw).digest('base64'));
    }
    assert.throws(() => compositeChecksum('sha256', ['not base64!']), /not base64/);
  });
});

describe('part checksums verified by Garage', { skip: garageMissing() ?? false }, () => {
  let garage;
  let browser;
  let proxy;
  let server;
  let s3;

  before(async () => {
    [garage, browser, proxy] = await Promise.all([startGarage(), launchBrowser(), startProxy()]);
    s3 = s3Client({
      endpoint: garage.endpoint, region: garage.region, accessKeyId: garage.accessKey, secretAccessKey: garage.secretKey,
    });
    await allowBrowsers(s3, garage.bucket);
    proxy.setTarget(garage.endpoint);
    // Part URLs name the proxy, which can corrupt a body on its way to Garage.
    server = await startServer({
      args: ['--endpoint', garage.endpoint, '--bucket', garage.bucket, '--region', garage.region,
        '--path-style', '--public-endpoint', proxy.url],
      env: { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey },
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await proxy?.stop();
    await garage?.stop();
  });

  /**
   * The proxy flips one byte of every attempt at part 2: Garage must refuse each (its sum no longer
   * matches), and the upload ends in an error naming part 2 and the store's answer.
   */
  async function alwaysCorrupted(algorithm) {
    const dir = await tempDir();
    const file = await randomFile(dir, `always-corrupted-${algorithm}.bin`, 11 * MiB);
    proxy.decide = ({ part }) => (part === 2 ? { corruptAt: 4242 } : undefined);
    const page = await openDemo(browser, server.url, {
      partSize: 5, concurrency: 2, checksum: algorithm, retryDelay: 50, maxRetryDelay: 200, retries: 2,
    });
    const from = proxy.log.length;
    try {
      await page.setInputFiles('#picker', file.path);
      const row = await waitForRow(page, file.name);
      assert.equal(row.state, 'error', row.detail);
      assert.match(row.detail, /part 2\b.*\b400\b.*(BadDigest|InvalidDigest)/, row.detail);
      const part2 = proxy.log.slice(from).filter((e) => e.part === 2);
      assert.ok(part2.length >= 1 && part2.every((e) => e.outcome === 400), JSON.stringify(part2));
    } finally {
      proxy.decide = () => undefined;
      await page.close();
    }
  }

  for (const algorithm of ['sha256', 'crc32c', 'crc32', 'md5']) {
    it(`${algorithm}: Garage refuses a part whose bytes do not match the sum signed into its URL`, async () => {
      await alwaysCorrupted(algorithm);
    });
  }

  // A refused body is sent again: the store names the mismatch BadDigest (Content-MD5, and AWS
  // for every algorithm) or, Garage for x-amz-checksum-*, InvalidDigest.
  for (const algorithm of ['md5', 'sha256', 'crc32c', 'crc32']) {
    it(`${algorithm}: a part corrupted once on the way is refused, sent again, and the object equals the file`, async () => {
      await corruptedBodyIsRefusedAndResent({ browser, server, proxy, s3, bucket: garage.bucket, checksum: algorithm });
    });
  }

  it('sha256: a 65 MiB part, hashed through the reused 1 MiB buffer, and a short last one both get the right sums', async () => {
    const dir = await tempDir();
    const file = await randomFile(dir, 'sha256-big-part.bin', 65 * MiB + 3 * MiB + 17);
    const page = await openDemo(browser, server.url, { partSize: 65, concurrency: 2, checksum: 'sha256' });
    try {
      await page.setInputFiles('#picker', file.path);
      const row = await waitForRow(page, file.name);
      assert.equal(row.state, 'done', row.detail);
      assert.equal(row.checksum, await compositeChecksum(file.path, 65 * MiB, 'sha256'));
      const stored = await objectSha256(s3, garage.bucket, row.key);
      assert.equal(stored.sha256, file.sha256, "stored SHA-256 equals the file's");
      // The upload was created for SHA-256 part checksums, so Garage keeps the object's composite
      // checksum, and it is the one the browser computed.
      assert.equal(await storedChecksum(s3, garage.bucket, row.key), row.checksum);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  // The page's first checksum request is swallowed on its way to the worker, as if the worker
  // never answered (a hang once seen in a benchmark). Past the deadline (the stall timeout plus
  // the part's bytes at 1 MB/s) a new worker takes over and the upload completes with the right sums.
  it('sha256: a checksum the worker never answers is asked of a new worker, and the upload completes', async () => {
    const dir = await tempDir();
    const file = await randomFile(dir, 'sha256-silent-worker.bin', 11 * MiB + 99);
    const swallowOne = () => {
      const Native = window.Worker;
      window.Worker = class extends Native {
        postMessage(message, ...rest) {
          if (window.swallowed === undefined && message && typeof message === 'object' && 'algorithm' in message) {
            window.swallowed = message.start;
            return;
          }
          super.postMessage(message, ...rest);
        }
      };
    };
    const page = await openDemo(browser, server.url, {
      partSize: 5, concurrency: 2, checksum: 'sha256', stallTimeout: 2000,
    }, { init: swallowOne });
    const workers = [];
    page.on('worker', (w) => workers.push(w.url()));
    const warnings = [];
    page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
    try {
      await page.setInputFiles('#picker', file.path);
      const row = await waitForRow(page, file.name);
      assert.equal(row.state, 'done', row.detail);
      assert.equal(await page.evaluate(() => window.swallowed), 0, "part 1's request was swallowed");
      assert.equal(row.checksum, await compositeChecksum(file.path, 5 * MiB, 'sha256'));
      const stored = await objectSha256(s3, garage.bucket, row.key);
      assert.equal(stored.sha256, file.sha256, "stored SHA-256 equals the file's");
      assert.equal(workers.length, 2, 'a second worker was started');
      assert.equal(warnings.filter((w) => /starting a new checksum worker/.test(w)).length, 1, warnings.join('\n'));
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('sha256 asked by the server: small files sent as one PUT are hashed, signed with their sums, and Garage accepted them', async () => {
    const asking = await startServer({
      args: ['--endpoint', garage.endpoint, '--bucket', garage.bucket, '--region', garage.region,
        '--path-style', '--checksum', 'sha256'],
      env: { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey },
    });
    const page = await browser.newPage();
    try {
      await page.goto(`${asking.url}/queue.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      const requests = [];
      page.on('request', (r) => {
        const url = new URL(r.url());
        if (r.method() === 'PUT' || url.pathname === '/s3/params') {
          requests.push({ method: r.method(), url, headers: r.headers() });
        }
      });
      const files = await page.evaluate(async () => {
        // The default options: checksum "auto", files up to 5 MiB as one PUT.
        const queue = new window.s3direct.UploadQueue({ resume: false });
        const out = [];
        // One after the other: the first learns which checksum the server wants.
        for (const size of [300_000, 200_001]) {
          const bytes = new Uint8Array(size);
          for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
          const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
          const result = await queue.add(new Blob([bytes]), { filename: `small-${size}.bin` }).promise;
          out.push({
            size,
            key: result.key,
            checksum: result.checksum,
            sha256: btoa(String.fromCharCode(...digest)),
            hex: [...digest].map((x) => x.toString(16).padStart(2, '0')).join(''),
          });
        }
        return out;
      });
      const summary = requests.map((r) => `${r.method} ${r.url.pathname}`);
      // The first file: a URL without a sum, the server's answer names SHA-256, the URL again
      // with the sum, its PUT; the second: the URL with its sum at once, its PUT.
      assert.deepEqual(summary, ['GET /s3/params', 'GET /s3/params', `PUT ${requests[2].url.pathname}`,
        'GET /s3/params', `PUT ${requests[4].url.pathname}`]);
      assert.equal(requests[0].url.searchParams.get('checksum'), null);
      assert.equal(requests[1].url.searchParams.get('checksum'), `sha256:${files[0].sha256}`);
      assert.equal(requests[3].url.searchParams.get('checksum'), `sha256:${files[1].sha256}`);
      const puts = requests.filter((r) => r.method === 'PUT');
      for (const [i, f] of files.entries()) {
        assert.ok(!puts[i].url.searchParams.has('uploadId'), 'one PUT, not a multipart upload');
        assert.equal(puts[i].headers['x-amz-checksum-sha256'], f.sha256);
        assert.equal(f.checksum, `sha256:${f.sha256}`);
        assert.deepEqual(await objectSha256(s3, garage.bucket, f.key), { sha256: f.hex, size: f.size });
      }
    } finally {
      await page.close();
      await asking.stop();
    }
  });

  // Node has MD5 and SHA-256 to recompute the composite sum with.
  for (const algorithm of ['sha256', 'md5']) {
    it(`${algorithm}: the sums the worker computed are the parts' (composite checksum), and Garage accepted them`, async () => {
      await checksumsInAWorker({ browser, server, s3, bucket: garage.bucket, algorithm });
    });
  }
});
