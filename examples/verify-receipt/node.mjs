// Verifies an s3-direct receipt with jose, as an application's backend does.
//
//   node node.mjs JWKS_URL RECEIPT
//
// JWKS_URL is the signing server's /.well-known/jwks.json. Prints the receipt's claims as JSON and
// exits 0 when the receipt is valid; prints why and exits 1 when it is not. Needs `jose`.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, receipt] = process.argv.slice(2);
if (!jwksUrl || !receipt) {
  console.error('usage: node node.mjs JWKS_URL RECEIPT');
  process.exit(2);
}
const keys = createRemoteJWKSet(new URL(jwksUrl));
try {
  const { payload } = await jwtVerify(receipt, keys, {
    issuer: 's3-direct',
    typ: 's3-direct-receipt+jwt',
    algorithms: ['EdDSA'],
    requiredClaims: ['iss', 'sub', 'iat'],
  });
  // Your backend then checks that `sub` is the user posting the form, that the receipt is fresh
  // (jwtVerify's `maxTokenAge`), and records `key`, `size`, `etag` and `crc32c`.
  console.log(JSON.stringify(payload));
} catch (e) {
  console.error(`receipt refused: ${e.message}`);
  process.exit(1);
}
