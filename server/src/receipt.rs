//! Signed receipts: what the server verified about a completed upload, in a form any backend can
//! check without trusting the browser that hands it over.
//!
//! A receipt is a compact JWS (a JWT) signed with Ed25519 (`alg: EdDSA`). Its claims name the
//! bucket, key, size, ETag, content type and checksum of the stored object (and its whole-file
//! CRC, `crc32c` or `crc32`, when the parts' CRCs give one), the caller's principal (`sub`), the
//! store's upload id and the time. The public keys are served as a JWK Set at
//! `/.well-known/jwks.json`, each with its RFC 7638 thumbprint as `kid`, so a stock JWT library
//! (`jose` in Node, PyJWT, `jsonwebtoken` in Rust) verifies a receipt. Keys come from
//! configuration (`--receipt-key`, a PKCS#8 PEM Ed25519 private key; `--receipt-public-key` for
//! keys being rotated out), so every replica signs alike; without one the server generates a key
//! at start, which only that process knows.

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use s3_direct_protocol::wire::WholeFileChecksum;
use serde::{Deserialize, Serialize};

/// The `typ` of a receipt's header, so a receipt is never mistaken for an access token.
pub const RECEIPT_TYPE: &str = "s3-direct-receipt+jwt";
/// The `iss` of receipts unless `--receipt-issuer` says otherwise.
pub const DEFAULT_ISSUER: &str = "s3-direct";
/// Where the public keys are served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What a receipt states. Every field is a fact the server checked, or its own (time, issuer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptClaims {
    /// The issuer (`--receipt-issuer`, default `s3-direct`).
    pub iss: String,
    /// The caller the upload belongs to (the JWT `sub`, the webhook's `id`, or `anonymous`).
    pub sub: String,
    /// Seconds since the Unix epoch when the receipt was signed.
    pub iat: u64,
    pub bucket: String,
    pub key: String,
    /// The stored object's size in bytes.
    pub size: u64,
    /// The stored object's ETag, as the store reports it.
    pub etag: String,
    pub content_type: String,
    /// The store's checksum of the object (`ALGO:BASE64` or `ALGO:BASE64-N` for a composite
    /// checksum of parts), when it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// `crc32c` (or `crc32`): the CRC of the whole object, base64 of its 4 big-endian bytes,
    /// whatever the part size (`whole_file.rs`); absent when the parts' CRCs give none.
    #[serde(flatten)]
    pub whole_file: WholeFileChecksum,
    /// The store's own id of the upload (not the `uploadId` with its token).
    pub upload_id: String,
}

/// Why receipt keys could not be loaded (a start-up error: `prepare` refuses to serve).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an Ed25519 private key in PKCS#8 PEM (make one with `openssl genpkey \
         -algorithm ed25519 -out receipt-key.pem`): {source}"
    )]
    NotPrivate {
        path: String,
        source: jsonwebtoken::errors::Error,
    },
    #[error(
        "{path} is not an Ed25519 public key in PEM (`openssl pkey -in KEY -pubout`): {source}"
    )]
    NotPublic {
        path: String,
        source: jsonwebtoken::errors::Error,
    },
}

/// How [`ReceiptSigner::from_pem`] names the keys it was given, having no file names.
const GIVEN_PRIVATE: &str = "the receipt key";
const GIVEN_PUBLIC: &str = "a previous receipt key";

fn private_key(pem: &[u8]) -> jsonwebtoken::errors::Result<EncodingKey> {
    EncodingKey::from_ed_pem(pem)
}

/// The JWK of an Ed25519 public key in PEM.
fn public_jwk(pem: &[u8]) -> jsonwebtoken::errors::Result<Jwk> {
    let key = DecodingKey::from_ed_pem(pem)?;
    Jwk::from_decoding_key(&key, Some(Algorithm::EdDSA))
}

/// Signs receipts with one key and publishes that key and any older ones.
pub struct ReceiptSigner {
    key: EncodingKey,
    kid: String,
    issuer: String,
    jwks: JwkSet,
    generated: bool,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("ReceiptSigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

impl ReceiptSigner {
    /// A signer with the PKCS#8 PEM Ed25519 private key `pem`, publishing the public keys in
    /// `previous` (PEM) beside its own.
    pub fn from_pem(pem: &[u8], previous: &[Vec<u8>], issuer: &str) -> Result<Self, KeyError> {
        let previous = previous
            .iter()
            .map(|p| public_jwk(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| KeyError::NotPublic {
                path: GIVEN_PUBLIC.to_owned(),
                source,
            })?;
        let not_private = |source| KeyError::NotPrivate {
            path: GIVEN_PRIVATE.to_owned(),
            source,
        };
        let private = private_key(pem).map_err(not_private)?;
        Self::with(private, previous, issuer, false).map_err(not_private)
    }

    /// Reads `--receipt-key` and `--receipt-public-key` files.
    pub fn from_files(
        key: &Path,
        previous: &[impl AsRef<Path>],
        issuer: &str,
    ) -> Result<Self, KeyError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| KeyError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let mut publics = Vec::with_capacity(previous.len());
        for p in previous {
            let p = p.as_ref();
            publics.push(public_jwk(&read(p)?).map_err(|source| KeyError::NotPublic {
                path: p.display().to_string(),
                source,
            })?);
        }
        let not_private = |source| KeyError::NotPrivate {
            path: key.display().to_string(),
            source,
        };
        let private = private_key(&read(key)?).map_err(not_private)?;
        Self::with(private, publics, issuer, false).map_err(not_private)
    }

    /// A signer with a key generated now (the zero-config demo): receipts verify only against
    /// this process's JWKS.
    pub fn generate(issuer: &str) -> Self {
        use aws_lc_rs::signature::Ed25519KeyPair;
        // Key generation fails only if the system's random source does; nothing can run then.
        let pair = Ed25519KeyPair::generate().expect("the system's random source failed");
        // PKCS#8 v1 (the private key alone) is the form `EncodingKey::from_ed_der` takes.
        let der = pair.to_pkcs8v1().expect("an Ed25519 key always encodes");
        Self::with(
            EncodingKey::from_ed_der(der.as_ref()),
            Vec::new(),
            issuer,
            true,
        )
        .expect("a generated Ed25519 key has a public key")
    }

    fn with(
        key: EncodingKey,
        previous: Vec<Jwk>,
        issuer: &str,
        generated: bool,
    ) -> jsonwebtoken::errors::Result<Self> {
        let own = Jwk::from_encoding_key(&key, Algorithm::EdDSA)?;
        let with_kid = |mut jwk: Jwk| -> jsonwebtoken::errors::Result<Jwk> {
            let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
            jwk.common.key_id = Some(kid);
            jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
            Ok(jwk)
        };
        let own = with_kid(own)?;
        let kid = own.common.key_id.clone().unwrap_or_default();
        let mut keys = vec![own];
        for jwk in previous {
            let jwk = with_kid(jwk)?;
            if jwk.common.key_id.as_deref() != Some(kid.as_str()) {
                keys.push(jwk);
            }
        }
        Ok(Self {
            key,
            kid,
            issuer: issuer.to_owned(),
            jwks: JwkSet { keys },
            generated,
        })
    }

    /// Whether the key was generated at start (and so is known to this process only).
    pub fn generated(&self) -> bool {
        self.generated
    }

    /// The key id receipts are signed with.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys, as served at [`JWKS_PATH`].
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &ReceiptClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(RECEIPT_TYPE.to_owned());
        // Signing with a key that loaded cannot fail; serialising these claims cannot either.
        jsonwebtoken::encode(&header, claims, &self.key).expect("signing a receipt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Validation, decode, decode_header};

    fn claims() -> ReceiptClaims {
        ReceiptClaims {
            iss: "s3-direct".into(),
            sub: "user-1".into(),
            iat: 1_800_000_000,
            bucket: "b".into(),
            key: "uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/a.bin".into(),
            size: 42,
            etag: "\"abc-2\"".into(),
            content_type: "video/mp4".into(),
            checksum: Some("CRC32C:AAAAAA==-2".into()),
            whole_file: WholeFileChecksum {
                crc32c: Some("yZRlqg==".into()),
                crc32: None,
            },
            upload_id: "u1".into(),
        }
    }

    fn validation() -> Validation {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v
    }

    /// A receipt verifies against the JWKS alone, as a backend does: find the key by `kid`.
    #[test]
    fn a_receipt_verifies_against_the_published_keys() {
        let signer = ReceiptSigner::generate("s3-direct");
        let token = signer.sign(&claims());
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some(RECEIPT_TYPE));
        let jwk = signer.jwks().find(header.kid.as_deref().unwrap()).unwrap();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let data = decode::<ReceiptClaims>(&token, &key, &validation()).unwrap();
        assert_eq!(data.claims, claims());
    }

    #[test]
    fn a_tampered_or_foreign_receipt_is_refused() {
        let signer = ReceiptSigner::generate("s3-direct");
        let key = DecodingKey::from_jwk(&signer.jwks().keys[0]).unwrap();
        let token = signer.sign(&claims());
        // Another size in the payload, the signature kept.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged.size = 4_000_000_000;
        parts[1] = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&forged).unwrap())
        };
        assert!(decode::<ReceiptClaims>(&parts.join("."), &key, &validation()).is_err());
        // Signed by another server's key.
        let other = ReceiptSigner::generate("s3-direct").sign(&claims());
        assert!(decode::<ReceiptClaims>(&other, &key, &validation()).is_err());
    }

    /// Keys from PEM, as `openssl genpkey -algorithm ed25519` writes them (this one is a test key,
    /// made for this test), with a previous key published beside the current one for receipts
    /// signed before a rotation.
    #[test]
    fn keys_load_from_pem_and_older_keys_stay_published() {
        const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEIAzrMKTgfvLXI6vMGtOxOOzDZ4QC1jTAv+1AAnTLyRRF\n\
            -----END PRIVATE KEY-----\n";
        let old = ReceiptSigner::generate("s3-direct");
        let old_public = old_public_pem(&old);
        let signer =
            ReceiptSigner::from_pem(PRIVATE.as_bytes(), &[old_public.into_bytes()], "s3-direct")
                .unwrap();
        assert_eq!(signer.jwks().keys.len(), 2);
        assert!(signer.jwks().find(old.kid()).is_some());
        let again = ReceiptSigner::from_pem(PRIVATE.as_bytes(), &[], "s3-direct").unwrap();
        assert_eq!(
            again.kid(),
            signer.kid(),
            "the kid is a function of the key"
        );
        let err = ReceiptSigner::from_pem(b"not a key", &[], "s3-direct").unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    /// The SubjectPublicKeyInfo PEM of a signer's key (the 12-byte Ed25519 SPKI prefix and the
    /// 32-byte key).
    fn old_public_pem(signer: &ReceiptSigner) -> String {
        use base64::Engine;
        let x = match &signer.jwks().keys[0].algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
            other => panic!("not an OKP key: {other:?}"),
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&raw);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }
}
