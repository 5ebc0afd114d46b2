// Whole-system tests on a real distributed store: Ceph radosgw started on loopback, the bucket's
// CORS rule set through the S3 API, s3-direct pointed at it with --endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { startCeph } from '../lib/ceph.mjs';
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

  it('uploads a 64 MiB file and two small ones at once, byte for byte', async () => {
    await uploadThreeFilesAtOnce({ browser, server, s3, bucket });
  });

  it('cancelling half-way aborts the multipart upload', async () => {
    await cancelHalfWay({ browser, server });
    assert.deepEqual(await listUploads(s3, bucket, 'uploads/'), [], 'no incomplete multipart upload remains');
  });
});
