// Signed receipts, as an application's backend checks them: an upload from the browser returns a
// receipt that a stock JWT library (jose) verifies against the server's /.well-known/jwks.json,
// whose claims match the stored object; a tampered receipt and one signed by another key are
// refused; two replicas given the same --receipt-key publish the same key.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { SignJWT, createLocalJWKSet, generateKeyPair, jwtVerify } from 'jose';
import { launchBrowser } from '../lib/browser.mjs';
import { tempDir } from '../lib/files.mjs';
import { s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';

const ISSUER = 's3-direct';
const TYPE = 's3-direct-receipt+jwt';
const BUCKET = 's3-direct';

/** Uploads `size` deterministic bytes named `name` with the package's Uploader; the result. */
async function uploadInPage(browser, server, name, size) {
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}/`);
    return await page.evaluate(async ({ name, size }) => {
      const { default: init, Uploader } = await import('/pkg/s3_direct.js');
      await init();
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 1) bytes[i] = (i * 31 + 7) & 0xff;
      const file = new File([bytes], name, { type: 'video/mp4' });
      const r = await new Uploader({ endpoint: '/s3' }).upload(file);
      return { ...r };
    }, { name, size });
  } finally {
    await page.close();
  }
}

async function jwksOf(server) {
  const answer = await fetch(`${server.url}/.well-known/jwks.json`);
  assert.equal(answer.status, 200);
  return answer.json();
}

/** The receipt with its payload changed and its signature kept. */
function tampered(receipt, change) {
  const [header, payload, signature] = receipt.split('.');
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url')), ...change };
  return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
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
    const { privateKey } = await generateKeyPair('EdDSA');
    const foreign = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'EdDSA', typ: TYPE, kid: protectedHeader.kid })
      .sign(privateKey);
    await assert.rejects(jwtVerify(foreign, createLocalJWKSet(jwks), { issuer: ISSUER }));
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
