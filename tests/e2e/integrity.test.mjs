// Integrity on by default: a signing server started with default settings (no --checksum) and
// the demo page with its default options. The fault proxy sits between the browser and the store
// and flips one byte of one part's first attempt: the store must refuse it (the part carries a
// checksum the store verifies: crc32c on the embedded store and Garage, md5 on Ceph 16, which
// ignores x-amz-checksum-*), the client send it again, and the stored object's SHA-256 be the
// file's. Also a small file (a single PUT) on the embedded store.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { startCeph } from '../lib/ceph.mjs';
import { garageMissing, startGarage } from '../lib/garage.mjs';
import { startProxy } from '../lib/proxy.mjs';
import { corruptedBodyIsRefusedAndResent, corruptedSmallFileIsRefusedAndResent } from '../lib/resilience.mjs';
import { allowBrowsers, createBucketForBrowsers, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';

/** A default server on a real store, its part URLs naming `proxy`, which forwards to the store. */
async function defaultServerOn(store, bucket, proxy) {
  proxy.setTarget(store.endpoint);
  return startServer({
    args: ['--endpoint', store.endpoint, '--bucket', bucket, '--region', store.region, '--path-style',
      '--public-endpoint', proxy.url],
    env: { AWS_ACCESS_KEY_ID: store.accessKey, AWS_SECRET_ACCESS_KEY: store.secretKey },
  });
}

/** What `/readyz` says the server asks for. */
async function readyChecksum(server) {
  const ready = await (await fetch(`${server.url}/readyz`)).json();
  return ready.checksum?.algorithm;
}

describe('integrity by default on the embedded store', () => {
  let browser;
  let proxy;
  let server;
  let s3;

  before(async () => {
    [browser, proxy] = await Promise.all([launchBrowser(), startProxy()]);
    server = await startServer({ args: ['--public-endpoint', proxy.url] });
    proxy.setTarget(server.storeEndpoint);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await proxy?.stop();
  });

  it('a part corrupted once on the way is refused, sent again, and the object equals the file', async () => {
    const asked = await corruptedBodyIsRefusedAndResent({
      browser, server, proxy, s3, bucket: 's3-direct', checksum: null,
    });
    assert.deepEqual(asked, ['crc32c']);
    assert.equal(await readyChecksum(server), 'crc32c');
  });

  it('a small file corrupted once on the way is refused, sent again, and equals the file', async () => {
    const asked = await corruptedSmallFileIsRefusedAndResent({ browser, server, proxy, s3, bucket: 's3-direct' });
    assert.ok(asked.length >= 1 && asked.every((c) => c === 'crc32c'), JSON.stringify(asked));
  });
});

describe('integrity by default on Garage', { skip: garageMissing() ?? false }, () => {
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
    server = await defaultServerOn(garage, garage.bucket, proxy);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await proxy?.stop();
    await garage?.stop();
  });

  it('a part corrupted once on the way is refused, sent again, and the object equals the file', async () => {
    const asked = await corruptedBodyIsRefusedAndResent({
      browser, server, proxy, s3, bucket: garage.bucket, checksum: null,
    });
    assert.deepEqual(asked, ['crc32c'], 'Garage verifies x-amz-checksum-crc32c');
    assert.equal(await readyChecksum(server), 'crc32c');
  });
});

describe('integrity by default on Ceph radosgw', () => {
  let ceph;
  let browser;
  let proxy;
  let server;
  let s3;
  const bucket = `integrity-${process.pid}-${Date.now()}`;

  before(async () => {
    [ceph, browser, proxy] = await Promise.all([startCeph(), launchBrowser(), startProxy()]);
    s3 = s3Client({
      endpoint: ceph.endpoint, region: ceph.region, accessKeyId: ceph.accessKey, secretAccessKey: ceph.secretKey,
    });
    await createBucketForBrowsers(s3, bucket);
    server = await defaultServerOn(ceph, bucket, proxy);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await proxy?.stop();
    await ceph?.stop();
  });

  it('a part corrupted once on the way is refused, sent again, and the object equals the file', async () => {
    const asked = await corruptedBodyIsRefusedAndResent({ browser, server, proxy, s3, bucket, checksum: null });
    assert.deepEqual(asked, ['md5'], 'Ceph 16 ignores x-amz-checksum-*, so md5 is asked for');
    assert.equal(await readyChecksum(server), 'md5');
  });
});
