// Whole-system tests on a real distributed store: Ceph radosgw started on loopback, the bucket's
// CORS rule set through the S3 API, s3-direct pointed at it with --endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { startCeph } from '../lib/ceph.mjs';
import { startProxy } from '../lib/proxy.mjs';
import {
  corruptedBodyIsRefusedAndResent, randomFaults, reloadAndChooseAgain, resignsShortLivedUrls,
  survivesServerRestart,
} from '../lib/resilience.mjs';
import { cancelHalfWay, uploadThreeFilesAtOnce } from '../lib/scenarios.mjs';
import { createBucketForBrowsers, listUploads, s3Client } from '../lib/s3.mjs';
import { startServer } from '../lib/server.mjs';

describe('ceph radosgw', () => {
  let ceph;
  let browser;
  let server;
  let s3;
  const bucket = `e2e-${process.pid}-${Date.now()}`;

  before(async () => {
    [ceph, browser] = await Promise.all([startCeph(), launchBrowser()]);
    const credentials = { accessKeyId: ceph.accessKey, secretAccessKey: ceph.secretKey };
    s3 = s3Client({ endpoint: ceph.endpoint, region: ceph.region, ...credentials });
    await createBucketForBrowsers(s3, bucket);
    server = await startServer({
      args: ['--endpoint', ceph.endpoint, '--bucket', bucket, '--region', ceph.region, '--path-style'],
      env: { AWS_ACCESS_KEY_ID: ceph.accessKey, AWS_SECRET_ACCESS_KEY: ceph.secretKey },
    });
    assert.equal(server.storeEndpoint, undefined, 'no embedded store when --endpoint is given');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await ceph?.stop();
  });

  /** A second server for the same bucket whose part URLs go through a fault-injecting proxy. */
  async function behindProxy(args = [], proxy = undefined, listen = undefined) {
    proxy ??= await startProxy();
    proxy.setTarget(ceph.endpoint);
    const proxied = await startServer({
      args: ['--endpoint', ceph.endpoint, '--bucket', bucket, '--region', ceph.region, '--path-style',
        '--public-endpoint', proxy.url, ...args],
      env: { AWS_ACCESS_KEY_ID: ceph.accessKey, AWS_SECRET_ACCESS_KEY: ceph.secretKey },
      listen,
    });
    return {
      proxy,
      server: proxied,
      async stop() {
        await proxied.stop();
        await proxy.stop();
      },
    };
  }

  it('a 256 MiB upload with one part in five failing once completes byte for byte', async () => {
    const { proxy, server: proxied, stop } = await behindProxy();
    try {
      await randomFaults({ browser, server: proxied, proxy, s3, bucket });
    } finally {
      await stop();
    }
  });

  it('a part body corrupted on the way is refused by radosgw (Content-MD5) and sent again', async () => {
    // The server asks for MD5 (all Ceph 16 verifies) and signs it; the page follows ("auto").
    const { proxy, server: proxied, stop } = await behindProxy(['--checksum', 'md5']);
    try {
      await corruptedBodyIsRefusedAndResent({
        browser, server: proxied, proxy, s3, bucket, checksum: 'auto',
      });
    } finally {
      await stop();
    }
  });

  it('reloading half-way and choosing the file again re-sends only the parts in flight', async () => {
    // radosgw lists parts with their ETags, so here the record is checked against them.
    const { proxy, server: proxied, stop } = await behindProxy();
    try {
      await reloadAndChooseAgain({ browser, server: proxied, proxy, s3, bucket });
    } finally {
      await stop();
    }
  });

  it('killing and restarting the signing server mid-upload does not fail the upload', async () => {
    const secret = ['--upload-secret', 'e2e-restart-secret-0123456789abcdef-0123'];
    const first = await behindProxy(secret);
    const listen = new URL(first.server.url).host;
    let current = first.server;
    try {
      await survivesServerRestart({
        browser,
        getServer: () => current,
        restartServer: async () => {
          current = (await behindProxy(secret, first.proxy, listen)).server;
        },
        proxy: first.proxy,
        s3,
        bucket,
      });
    } finally {
      await current.stop();
      await first.stop();
    }
  });

  it('with 5 s URLs on a throttled link the upload completes by re-signing (radosgw checks expiry)', async () => {
    const { proxy, server: proxied, stop } = await behindProxy(['--url-lifetime', '5']);
    try {
      await resignsShortLivedUrls({ browser, server: proxied, proxy, s3, bucket });
    } finally {
      await stop();
    }
  });

  it('uploads a 64 MiB file and two small ones at once, byte for byte', async () => {
    await uploadThreeFilesAtOnce({ browser, server, s3, bucket });
  });

  it('cancelling half-way aborts the multipart upload', async () => {
    await cancelHalfWay({ browser, server });
    assert.deepEqual(await listUploads(s3, bucket, 'uploads/'), [], 'no incomplete multipart upload remains');
  });
});
