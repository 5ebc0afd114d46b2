// What a backend is handed in place of a real receipt, for tests that show it refuses them.
import { SignJWT, generateKeyPair } from 'jose';

export const RECEIPT_TYPE = 's3-direct-receipt+jwt';

/** `receipt` with its payload changed by `change` and its signature kept. */
export function tampered(receipt, change) {
  const [header, payload, signature] = receipt.split('.');
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url')), ...change };
  return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
}

/** `receipt`'s claims signed with a key of our own under the published `kid`. */
export async function foreign(receipt) {
  const [header, payload] = receipt.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url')));
  const { privateKey } = await generateKeyPair('EdDSA');
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'EdDSA', typ: RECEIPT_TYPE, kid: header.kid })
    .sign(privateKey);
}
