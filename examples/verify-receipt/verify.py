"""Verifies an s3-direct receipt with PyJWT, as an application's backend does.

    python verify.py JWKS_URL RECEIPT

JWKS_URL is the signing server's /.well-known/jwks.json. Prints the receipt's claims as JSON and
exits 0 when the receipt is valid; prints why and exits 1 when it is not. Needs PyJWT with
cryptography (`pip install --require-hashes -r requirements.txt`).
"""

import json
import sys

import jwt

ISSUER = "s3-direct"
TYPE = "s3-direct-receipt+jwt"


def verify(receipt: str, keys: jwt.PyJWKClient) -> dict:
    """The receipt's claims, once its signature, algorithm, type and issuer are checked."""
    if jwt.get_unverified_header(receipt).get("typ") != TYPE:
        raise jwt.InvalidTokenError(f"not a receipt: the header's typ is not {TYPE}")
    key = keys.get_signing_key_from_jwt(receipt).key
    return jwt.decode(
        receipt,
        key,
        algorithms=["EdDSA"],
        issuer=ISSUER,
        options={"require": ["iss", "sub", "iat"]},
    )


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python verify.py JWKS_URL RECEIPT", file=sys.stderr)
        return 2
    jwks_url, receipt = sys.argv[1], sys.argv[2]
    try:
        claims = verify(receipt, jwt.PyJWKClient(jwks_url))
    except jwt.PyJWTError as e:
        print(f"receipt refused: {e}", file=sys.stderr)
        return 1
    # Your backend then checks that `sub` is the user posting the form, that the receipt is
    # fresh (`iat`), and records `key`, `size`, `etag` and `crc32c`.
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
