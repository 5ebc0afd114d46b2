// Operating s3-direct on a real store: a fresh Garage bucket has no CORS rule, so the demo page's
// upload fails with the CORS hint; after `s3-direct bucket setup` it succeeds byte for byte, and
// `s3-direct doctor` passes. Garage is started through tests/stores/garage.sh.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openDemo, waitForRow } from '../lib/browser.mjs';
import { randomFile, tempDir, MiB } from '../lib/files.mjs';
import { garageMissing, startGarage } from '../lib/garage.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { repoRoot, startServer } from '../lib/server.mjs';
import { CreateBucketCommand, GetBucketCorsCommand } from '@aws-sdk/client-s3';

const run = promisify(execFile);
const binary = process.env.S3_DIRECT_BIN ?? path.join(repoRoot, 'target/debug/s3-direct');

describe('operating on garage', { skip: garageMissing() ?? false }, () => {
  let garage;
  let browser;
  let server;
  let s3;
  let storeArgs;
  let storeEnv;
  const bucket = `operate-${process.pid}-${Date.now()}`;

  before(async () => {
    [garage, browser] = await Promise.all([startGarage(), launchBrowser()]);
    s3 = s3Client({
      endpoint: garage.endpoint, region: garage.region,
      accessKeyId: garage.accessKey, secretAccessKey: garage.secretKey,
    });
    // A bucket of its own, with no CORS rule at all.
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    storeArgs = ['--endpoint', garage.endpoint, '--bucket', bucket, '--region', garage.region, '--path-style'];
    storeEnv = { AWS_ACCESS_KEY_ID: garage.accessKey, AWS_SECRET_ACCESS_KEY: garage.secretKey };
    server = await startServer({ args: storeArgs, env: storeEnv });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await garage?.stop();
  });

  /** Runs an operator command of the binary against the test bucket. */
  async function s3Direct(args) {
    try {
      const { stdout } = await run(binary, [...args, ...storeArgs], {
        env: { ...process.env, ...storeEnv, RUST_LOG: 'warn' },
      });
      return { ok: true, stdout };
    } catch (err) {
      return { ok: false, stdout: err.stdout, stderr: err.stderr };
    }
  }

  /** Uploads a 12 MiB file (3 parts) from the demo page and returns its row and the file. */
  async function uploadFromDemo(name, query = {}) {
    const dir = await tempDir();
    const file = await randomFile(dir, name, 12 * MiB);
    const page = await openDemo(browser, server.url, { partSize: 5, concurrency: 3, ...query });
    try {
      await page.setInputFiles('#picker', file.path);
      return { row: await waitForRow(page, name), file, pageErrors: page.pageErrors };
    } finally {
      await page.close();
    }
  }

  it('fails with the CORS hint before bucket setup, and works after it', async () => {
    const origin = new URL(server.url).origin;

    // No CORS rule: Garage refuses the preflight, the browser reports a network error, and the
    // client says which setting to check. No retries, so the failure comes at once.
    const before = await uploadFromDemo('before-setup.bin', { retries: 0 });
    assert.equal(before.row.state, 'error', before.row.detail);
    assert.match(before.row.detail, /bucket's CORS rule allows PUT from this origin/);

    // doctor sees the same and prints the fix. Garage 2.5 answers every preflight with `*`, even
    // for a bucket without CORS, and then leaves Access-Control-Allow-Origin off the PUT's
    // answer: the part is stored, but the browser hides the answer.
    const sick = await s3Direct(['doctor', '--cors-origin', origin]);
    assert.equal(sick.ok, false, sick.stdout);
    assert.match(sick.stdout, /^FAIL {2}browser upload +the PUT worked but its answer lacks Access-Control-Allow-Origin/m);
    assert.match(sick.stdout, /aws s3api put-bucket-cors/);
    // Uppy's small-file form is stored too, and its answer hidden the same way.
    assert.match(sick.stdout, /^warn {2}small-file form +.*no Access-Control-Allow-Origin/m);
    assert.match(sick.stdout, new RegExp(`s3-direct bucket setup --endpoint ${garage.endpoint} --bucket ${bucket} --cors-origin ${origin}`));

    const setup = await s3Direct(['bucket', 'setup', '--cors-origin', origin]);
    assert.ok(setup.ok, `${setup.stdout}\n${setup.stderr}`);
    assert.match(setup.stdout, /^CORS: added rule "s3-direct-browser-uploads"/m);
    assert.match(setup.stdout, /^lifecycle: added rule "s3-direct-abort-incomplete-uploads"/m);
    const { CORSRules } = await s3.send(new GetBucketCorsCommand({ Bucket: bucket }));
    assert.deepEqual(CORSRules.map((r) => r.AllowedOrigins), [[origin]]);

    const afterSetup = await uploadFromDemo('after-setup.bin');
    assert.equal(afterSetup.row.state, 'done', afterSetup.row.detail);
    const stored = await objectSha256(s3, bucket, afterSetup.row.key);
    assert.equal(stored.size, afterSetup.file.size);
    assert.equal(stored.sha256, afterSetup.file.sha256);
    assert.deepEqual(afterSetup.pageErrors, []);

    const healthy = await s3Direct(['doctor', '--cors-origin', origin]);
    assert.ok(healthy.ok, `${healthy.stdout}\n${healthy.stderr}`);
    assert.match(healthy.stdout, /^passed: 7 ok, 0 warning\(s\), 0 failed$/m);
    // Garage refuses a part with a wrong CRC32C, so the default asks browsers for it.
    assert.match(healthy.stdout, /^ok {4}checksums +.*stored anyway for: none; --checksum auto asks for crc32c/m);
  });
});
