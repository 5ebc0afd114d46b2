// Signed receipts, as an application's backend checks them: an upload from the browser returns a
// receipt that a stock JWT library (jose) verifies against the server's /.well-known/jwks.json,
// whose claims match the stored object; a tampered receipt and one signed by another key are
// refused; two replicas given the same --receipt-key publish the same key. With CRC32C parts the
// receipt carries the whole file's CRC32C, as computed here from the bytes. The verification
// examples (examples/verify-receipt: Node with jose, Python with PyJWT, Rust with jsonwebtoken)
// accept the receipt and refuse a tampered or foreign one.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFile, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { launchBrowser } from '../lib/browser.mjs';
import { tempDir } from '../lib/files.mjs';
import { RECEIPT_TYPE as TYPE, foreign, tampered } from '../lib/receipts.mjs';
import { s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from '../lib/server.mjs';

const ISSUER = 's3-direct';
const BUCKET = 's3-direct';

/** The bytes `uploadInPage` uploads. */
function fileBytes(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 1) bytes[i] = (i * 31 + 7 + (i >> 16)) & 0xff;
  return bytes;
}

/** Uploads `size` deterministic bytes named `name` with the package's Uploader; the result. */
async function uploadInPage(browser, server, name, size, options = {}) {
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}/`);
    return await page.evaluate(async ({ name, size, options }) => {
      const { default: init, Uploader } = await import('/pkg/s3_direct.js');
      await init();
      // The bytes of fileBytes(size).
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 1) bytes[i] = (i * 31 + 7 + (i >> 16)) & 0xff;
      const file = new File([bytes], name, { type: 'video/mp4' });
      const r = await new Uploader({ endpoint: '/s3', ...options }).upload(file);
      return { ...r };
    }, { name, size, options });
  } finally {
    await page.close();
  }
}

/** CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of `bytes`, in S3's form: base64 of
 * its 4 big-endian bytes. Node has no CRC32C of its own. */
function crc32c(bytes) {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = table[(crc ^ b) & 0xff] ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

const run = promisify(execFile);

/**
 * The receipt verification examples, each as `[name, program, args before JWKS_URL RECEIPT]`, or
 * a reason one cannot run. Python needs the venv that `scripts/setup.sh test` makes
 * (tests/.venv), Rust the example built beside the server (`cargo build -p s3-direct-server
 * --example verify-receipt`). Under CI=true a missing one fails the test instead.
 */
async function verifiers(dir) {
  const examples = path.join(repoRoot, 'examples/verify-receipt');
  // The Node example resolves `jose` from the test suite's packages.
  await symlink(path.join(repoRoot, 'tests/node_modules'), path.join(dir, 'node_modules'));
  await copyFile(path.join(examples, 'node.mjs'), path.join(dir, 'node.mjs'));
  const found = [['node', process.execPath, [path.join(dir, 'node.mjs')]]];
  const missing = [];
  const python = path.join(repoRoot, 'tests/.venv/bin/python');
  try {
    await run(python, ['-c', 'import jwt, cryptography']);
    found.push(['python', python, [path.join(examples, 'verify.py')]]);
  } catch (e) {
    missing.push(`Python with PyJWT and cryptography (${python}: ${e.message.split('\n')[0]}; run scripts/setup.sh test)`);
  }
  const server = process.env.S3_DIRECT_BIN ?? path.join(repoRoot, 'target/debug/s3-direct');
  const rust = path.join(path.dirname(server), 'examples/verify-receipt');
  if (existsSync(rust)) found.push(['rust', rust, []]);
  else missing.push(`the Rust example (${rust}; cargo build -p s3-direct-server --example verify-receipt)`);
  return { found, missing };
}

/** Runs a verification example on `receipt`: its exit code and output. */
async function verifyWith([, program, args], jwksUrl, receipt) {
  try {
    const { stdout } = await run(program, [...args, jwksUrl, receipt], { timeout: 30_000 });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    if (e.code === undefined || typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function jwksOf(server) {
  const answer = await fetch(`${server.url}/.well-known/jwks.json`);
  assert.equal(answer.status, 200);
  return answer.json();
}

describe('signed receipts', () => {
  let browser;
  let server;
  let s3;
  let keyFile;

  before(async () => {
    const dir = await tempDir('s3-direct-receipt-key-');
    keyFile = path.join(dir, 'receipt-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', keyFile]);
    [browser, server] = await Promise.all([
      launchBrowser(),
      startServer({ args: ['--receipt-key', keyFile] }),
    ]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('a multipart upload returns a receipt that jose verifies against the JWKS', async () => {
    const size = 12 * 2 ** 20 + 5;
    const result = await uploadInPage(browser, server, 'clip.mp4', size);
    assert.equal(typeof result.receipt, 'string', 'the result carries a receipt');
    const jwks = await jwksOf(server);
    const { payload, protectedHeader } = await jwtVerify(result.receipt, createLocalJWKSet(jwks), {
      issuer: ISSUER,
      typ: TYPE,
      algorithms: ['EdDSA'],
    });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.ok(jwks.keys.some((k) => k.kid === protectedHeader.kid), 'the kid names a published key');
    assert.equal(payload.sub, 'anonymous');
    assert.equal(payload.bucket, BUCKET);
    assert.equal(payload.key, result.key);
    assert.equal(payload.size, size);
    assert.equal(payload.content_type, 'video/mp4');
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 300, 'signed just now');
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: result.key }));
    assert.equal(payload.etag, head.ETag, 'the receipt names the stored object');
    assert.equal(Number(head.ContentLength), size);
    assert.ok(payload.upload_id && !payload.upload_id.includes('.'), 'the store upload id, without the token');

    // A backend refuses a changed receipt and one signed with another key.
    await assert.rejects(jwtVerify(tampered(result.receipt, { size: 1 }), createLocalJWKSet(jwks), { issuer: ISSUER }));
    await assert.rejects(jwtVerify(tampered(result.receipt, { key: 'uploads/other' }), createLocalJWKSet(jwks), { issuer: ISSUER }));
    await assert.rejects(jwtVerify(await foreign(result.receipt), createLocalJWKSet(jwks), { issuer: ISSUER }));
  });

  it('with CRC32C parts, the result and the receipt carry the whole file\'s CRC32C', async () => {
    // Three 5 MiB parts and a short last one: the value must not depend on the part size.
    const size = 15 * 2 ** 20 + 4321;
    const expected = crc32c(fileBytes(size));
    const result = await uploadInPage(browser, server, 'clip.mp4', size, { checksum: 'crc32c', partSize: 5 * 2 ** 20 });
    assert.equal(result.crc32c, expected, 'the result carries the whole file\'s CRC32C');
    assert.equal(result.crc32, null);
    assert.match(result.checksum, /^crc32c:[A-Za-z0-9+/=]+-4$/, 'the composite checksum is another value');
    const { payload } = await jwtVerify(result.receipt, createLocalJWKSet(await jwksOf(server)), {
      issuer: ISSUER, typ: TYPE, algorithms: ['EdDSA'],
    });
    assert.equal(payload.crc32c, expected);
    assert.equal(payload.checksum, result.checksum);
    // Without part CRCs (SHA-256 parts) no whole-file value can be combined.
    const sha = await uploadInPage(browser, server, 'clip.mp4', 6 * 2 ** 20, { checksum: 'sha256' });
    assert.equal(sha.crc32c, null);
    const { payload: shaClaims } = await jwtVerify(sha.receipt, createLocalJWKSet(await jwksOf(server)));
    assert.equal(shaClaims.crc32c, undefined);
  });

  it('the verification examples in Node, Python and Rust accept a receipt and refuse a tampered or foreign one', async (t) => {
    const dir = await tempDir('s3-direct-verify-');
    const { found, missing } = await verifiers(dir);
    if (missing.length > 0) {
      const why = `cannot run ${missing.join(' and ')}`;
      if (process.env.CI === 'true') assert.fail(why);
      t.diagnostic(why);
    }
    const result = await uploadInPage(browser, server, 'clip.mp4', 6 * 2 ** 20, { checksum: 'crc32c' });
    const jwksUrl = `${server.url}/.well-known/jwks.json`;
    const signedElsewhere = await foreign(result.receipt);
    for (const verifier of found) {
      const good = await verifyWith(verifier, jwksUrl, result.receipt);
      assert.equal(good.code, 0, `${verifier[0]} accepts the receipt: ${good.stderr}`);
      const printed = JSON.parse(good.stdout);
      assert.equal(printed.key, result.key, verifier[0]);
      assert.equal(printed.size, 6 * 2 ** 20, verifier[0]);
      assert.equal(printed.crc32c, result.crc32c, verifier[0]);
      for (const [what, bad] of [
        ['a changed size', tampered(result.receipt, { size: 1 })],
        ['a changed key', tampered(result.receipt, { key: 'uploads/other' })],
        ['another key\'s signature', signedElsewhere],
      ]) {
        const refused = await verifyWith(verifier, jwksUrl, bad);
        assert.equal(refused.code, 1, `${verifier[0]} refuses a receipt with ${what}: ${refused.stdout}`);
        assert.match(refused.stderr, /receipt refused/, verifier[0]);
      }
    }
    if (missing.length > 0) t.skip(`ran ${found.map(([name]) => name).join(', ')} only: ${missing.join(' and ')}`);
  });

  it('replicas given the same --receipt-key publish the same key', async () => {
    const other = await startServer({ args: ['--receipt-key', keyFile] });
    try {
      const [a, b] = await Promise.all([jwksOf(server), jwksOf(other)]);
      assert.deepEqual(a, b);
      assert.equal(a.keys.length, 1);
      assert.equal(a.keys[0].kty, 'OKP');
      assert.equal(a.keys[0].crv, 'Ed25519');
      assert.equal(a.keys[0].d, undefined, 'no private part is published');
    } finally {
      await other.stop();
    }
    // Without a key, each process makes its own.
    const own = await startServer();
    try {
      const [a, b] = await Promise.all([jwksOf(server), jwksOf(own)]);
      assert.notEqual(a.keys[0].kid, b.keys[0].kid);
    } finally {
      await own.stop();
    }
  });
});
