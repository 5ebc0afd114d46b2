// Integrity on by default: a signing server started with default settings (no --checksum) and
// the demo page with its default options. The fault proxy sits between the browser and the store
// and flips one byte of one part's first attempt: the store must refuse it (the part carries a
// checksum the store verifies: crc32c on the embedded store and Garage, md5 on Ceph 16, which
// ignores x-amz-checksum-*), the client send it again, and the stored object's SHA-256 be the
// file's. Also a small file (a single PUT) on the embedded store.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCeph } from '../lib/ceph.mjs';
import { garageMissing, startGarage } from '../lib/garage.mjs';
import { startProxiedStack } from '../lib/proxied-stack.mjs';
import { corruptedBodyIsRefusedAndResent, corruptedSmallFileIsRefusedAndResent } from '../lib/resilience.mjs';
import { allowBrowsers, createBucketForBrowsers } from '../lib/s3.mjs';

/** What `/readyz` says the server asks for. */
async function readyChecksum(server) {
  const ready = await (await fetch(`${server.url}/readyz`)).json();
  return ready.checksum?.algorithm;
}

describe('integrity by default on the embedded store', () => {
  let stack;

  before(async () => {
    stack = await startProxiedStack();
  });

  after(() => stack?.stop());

  it('a part corrupted once on the way is refused, sent again, and the object equals the file', async () => {
    const asked = await corruptedBodyIsRefusedAndResent({ ...stack, checksum: null });
    assert.deepEqual(asked, ['crc32c']);
    assert.equal(await readyChecksum(stack.server), 'crc32c');
  });

  it('a small file corrupted once on the way is refused, sent again, and equals the file', async () => {
    const asked = await corruptedSmallFileIsRefusedAndResent(stack);
    assert.ok(asked.length >= 1 && asked.every((c) => c === 'crc32c'), JSON.stringify(asked));
  });
});

describe('integrity by default on Garage', { skip: garageMissing() ?? false }, () => {
  let garage;
  let stack;

  before(async () => {
    garage = await startGarage();
    stack = await startProxiedStack({ store: garage, bucket: garage.bucket, prepareBucket: allowBrowsers });
  });

  after(async () => {
    await stack?.stop();
    await garage?.stop();
  });

  it('a part corrupted once on the way is refused, sent again, and the object equals the file', async () => {
    const asked = await corruptedBodyIsRefusedAndResent({ ...stack, checksum: null });
    assert.deepEqual(asked, ['crc32c'], 'Garage verifies x-amz-checksum-crc32c');
    assert.equal(await readyChecksum(stack.server), 'crc32c');
  });
});

describe('integrity by default on Ceph radosgw', () => {
  let ceph;
  let stack;

  before(async () => {
    ceph = await startCeph();
    stack = await startProxiedStack({
      store: ceph, bucket: `integrity-${process.pid}-${Date.now()}`, prepareBucket: createBucketForBrowsers,
    });
  });

  after(async () => {
    await stack?.stop();
    await ceph?.stop();
  });

  it('a part corrupted once on the way is refused, sent again, and the object equals the file', async () => {
    const asked = await corruptedBodyIsRefusedAndResent({ ...stack, checksum: null });
    assert.deepEqual(asked, ['md5'], 'Ceph 16 ignores x-amz-checksum-*, so md5 is asked for');
    assert.equal(await readyChecksum(stack.server), 'md5');
  });
});
