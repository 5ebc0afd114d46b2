// The core scenarios on each browser engine (tests/lib/engines.mjs; S3_DIRECT_BROWSERS picks them)
// against a real store: a single-node Garage (tests/lib/garage.mjs), one for the whole file.
// Part PUTs pass through the fault proxy on their way to Garage, which checks what the embedded
// store cannot: it refuses a part whose body no longer matches its CRC32C sum (docs/stores.md).
// Screenshots go to tests/artifacts/engines/ (git-ignored).
import assert from 'node:assert/strict';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bigAndSmallAtOnce, cancelHalfWay, faultsAreResent } from '../lib/engine-scenarios.mjs';
import { engineMissing, launchEngine, selectedEngines } from '../lib/engines.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { garageMissing, startGarage } from '../lib/garage.mjs';
import { startProxy } from '../lib/proxy.mjs';
import { allowBrowsers, listUploads, s3Client, storedChecksum } from '../lib/s3.mjs';
import { repoRoot, startServer } from '../lib/server.mjs';

const artifacts = path.join(repoRoot, 'tests/artifacts/engines');

// One Garage, one proxy, one signing server and one set of files for every engine of the run.
let shared;
function setUp() {
  shared ??= (async () => {
    const dir = await tempDir();
    const started = await Promise.allSettled([
      startGarage(), startProxy(), mkdir(artifacts, { recursive: true }),
      Promise.all([
        randomFile(dir, 'big-256MiB.bin', 256 * MiB),
        randomFile(dir, 'ñ 日本 🎉 a+b%20.bin', 1234),
        randomFile(dir, 'small.txt', 100 * 1024 + 1),
        randomFile(dir, 'cancel-me-64MiB.bin', 64 * MiB),
        randomFile(dir, 'faults-40MiB.bin', 40 * MiB),
      ]),
    ]);
    const [garage, proxy] = started.map((r) => r.value);
    const stopAll = async () => {
      await proxy?.stop();
      await garage?.stop();
    };
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await stopAll();
      throw failed.reason;
    }
    const [big, accented, small, cancel, faults] = started[3].value;
    const s3 = s3Client({
      endpoint: garage.endpoint, region: garage.region, accessKeyId: garage.accessKey, secretAccessKey: garage.secretKey,
    });
    await allowBrowsers(s3, garage.bucket);
    proxy.setTarget(garage.endpoint);
    // Part URLs name the proxy, which forwards them to Garage with their Host unchanged.
    const server = await startServer({
      args: ['--endpoint', garage.endpoint, '--bucket', garage.bucket, '--region', garage.region,
        '--path-style', '--public-endpoint', proxy.url],
      env: { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey },
    }).catch(async (err) => {
      await stopAll();
      throw err;
    });
    return {
      garage, proxy, server, s3, bucket: garage.bucket,
      files: { big, accented, small, cancel, faults },
      async stop() {
        await server.stop();
        await stopAll();
      },
    };
  })();
  return shared;
}

after(async () => {
  if (shared) await (await shared.catch(() => null))?.stop();
});

/** What Garage holds of `name`: its incomplete multipart uploads and its objects, by key. */
async function leftoversOf(s3, bucket, name) {
  const uploads = (await listUploads(s3, bucket)).filter((u) => u.Key.endsWith(`/${name}`));
  const objects = (await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [];
  return [
    ...uploads.map((u) => `upload ${u.Key}`),
    ...objects.filter((o) => o.Key.endsWith(`/${name}`)).map((o) => `object ${o.Key}`),
  ];
}

for (const name of selectedEngines()) {
  const skip = engineMissing(name) ?? garageMissing() ?? false;
  describe(`${name}: the core scenarios on Garage`, { skip, timeout: 600_000 }, () => {
    let engine;
    let env;

    before(async () => {
      const started = await Promise.allSettled([launchEngine(name), setUp()]);
      [engine, env] = started.map((r) => r.value);
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      process.stderr.write(`${name}: ${engine.version} against Garage\n`);
    });

    after(async () => {
      await engine?.close();
    });

    it('the demo uploads a 256 MiB file and two small ones at once; Garage holds them byte for byte', async () => {
      const { big, accented, small } = env.files;
      await bigAndSmallAtOnce({
        ...env, engine, files: [big, accented, small], screenshot: path.join(artifacts, `${name}-garage-demo.png`),
      });
    });

    it('cancelling half-way leaves no multipart upload and no object in Garage', async () => {
      const { cancel } = env.files;
      await cancelHalfWay({
        ...env, engine, file: cancel, leftovers: () => leftoversOf(env.s3, env.bucket, cancel.name),
      });
    });

    it('a part cut mid-body and a part with a corrupted byte (refused by Garage) are sent again', async () => {
      const { faults } = env.files;
      const row = await faultsAreResent({
        ...env, engine, file: faults, query: { checksum: 'crc32c' },
        faults: {
          2: { action: { cutAfter: MiB + 3 }, outcome: 'cut' },
          // Garage compares the body with the part's CRC32C and answers 400 (docs/stores.md).
          5: { action: { corruptAt: 123_457 }, outcome: 400 },
        },
      });
      assert.equal(await storedChecksum(env.s3, env.bucket, row.key), row.checksum,
        'Garage kept the composite CRC32C the browser computed');
    });
  });
}
