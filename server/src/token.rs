//! Upload tokens: proof, carried inside `uploadId`, that an upload belongs to the caller.
//!
//! The server keeps no state, so ownership travels with the client. Create answers
//! `uploadId = "{store upload id}.{token}"` ([`crate::upload_id`] joins and splits it). The token
//! is base64url (no `.`) of a 32-byte HMAC-SHA256 tag followed by compact JSON
//! [`UploadClaims`]. The tag covers the store upload id, the object key and the claims, so a token
//! replayed on another upload or key fails; the claims hold a digest of the principal, the plan
//! and the expiry. Any replica holding the same secret verifies any token.
//!
//! Small files have a token of their own ([`ObjectClaims`]): `GET /s3/params` answers one with its
//! presigned PUT or POST form, and `POST /s3/params/complete` takes it back. Its tag covers the
//! object key and its claims the principal, the declared size or the size bound, the content type
//! and the expiry. It is sealed the same way under another context, so neither kind of token ever
//! verifies as the other.
//!
//! Rotation: tokens are sealed with the current secret and accepted under the current or the
//! previous one, so a secret can be replaced without breaking uploads in flight.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use s3_direct_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Length of the HMAC-SHA256 tag at the start of a decoded token.
const TAG_LEN: usize = 32;
/// Domain separation: a tag made for anything else never verifies as an upload token.
const CONTEXT: &[u8] = b"s3-direct upload token v1";
/// Domain separation of small-file tokens ([`ObjectClaims`]).
const OBJECT_CONTEXT: &[u8] = b"s3-direct small-file token v1";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest token accepted, in characters (claims are a few dozen bytes).
const MAX_TOKEN_CHARS: usize = 512;

/// What the token vouches for, besides the upload id and key its tag covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadClaims {
    /// Digest of the principal that created the upload (base64url of 16 bytes of SHA-256).
    #[serde(rename = "a")]
    pub principal: String,
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires_at: u64,
    /// Declared object size.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Declared part size (only with `size`).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// The caller's maximum object size when the upload was created.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// The checksum algorithm the upload was created with (never MD5): every part must be signed
    /// with it, and completion passes the parts' checksums of it.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<s3_direct_protocol::wire::ChecksumAlgorithm>,
}

/// What a small file's token vouches for, besides the object key its tag covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClaims {
    /// Digest of the principal the file's URL was signed for ([`principal_digest`]).
    #[serde(rename = "a")]
    pub principal: String,
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires_at: u64,
    /// The declared size: the object must hold exactly this many bytes.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The size bound when no size was declared (the caller's maximum object size).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// The content type signed into the URL or form, normalised.
    #[serde(rename = "t")]
    pub content_type: String,
}

/// Digest of a principal as it appears in claims: tokens do not reveal who made them.
pub fn principal_digest(principal: &str) -> String {
    let digest = Sha256::digest(principal.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// An upload secret shorter than [`MIN_SECRET_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an upload secret of {0} bytes is too short; use at least {min} random bytes \
     (e.g. `openssl rand -hex 32`)",
    min = MIN_SECRET_BYTES
)]
pub struct SecretTooShort(pub usize);

/// The secrets that seal and open tokens. Its `Debug` never shows them.
#[derive(Clone)]
pub struct UploadSecrets {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl fmt::Debug for UploadSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadSecrets")
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl UploadSecrets {
    /// Secrets from configuration; each must be at least [`MIN_SECRET_BYTES`] long.
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Result<Self, SecretTooShort> {
        for s in std::iter::once(current).chain(previous) {
            if s.len() < MIN_SECRET_BYTES {
                return Err(SecretTooShort(s.len()));
            }
        }
        Ok(Self {
            current: current.to_vec(),
            previous: previous.map(<[u8]>::to_vec),
        })
    }

    /// A random secret for this process only (UUID v4 randomness, 4 x 122 bits).
    pub fn random() -> Self {
        let mut bytes = Vec::with_capacity(64);
        for _ in 0..4 {
            bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        }
        Self {
            current: bytes,
            previous: None,
        }
    }

    /// The token for `store_upload_id` + `key` with `claims`.
    pub fn seal(&self, store_upload_id: &str, key: &str, claims: &UploadClaims) -> String {
        self.seal_in(CONTEXT, store_upload_id, key, claims)
    }

    /// Verifies `token` for `store_upload_id` + `key` and returns its claims, checking that it
    /// has not expired at `now` (seconds since the epoch). The principal is checked by the caller.
    pub fn open(
        &self,
        store_upload_id: &str,
        key: &str,
        token: &str,
        now: u64,
    ) -> Result<UploadClaims, Error> {
        let invalid = |why: &str| Error::Forbidden {
            code: ErrorCode::InvalidUploadToken,
            message: format!(
                "the upload token in uploadId {why}; pass the uploadId and key returned by create \
                 unchanged, or start a new upload"
            ),
        };
        let claims: UploadClaims = self.open_in(CONTEXT, store_upload_id, key, token, &invalid)?;
        if claims.expires_at <= now {
            return Err(invalid("has expired"));
        }
        Ok(claims)
    }

    /// The token of the small file under `key` with `claims`.
    pub fn seal_object(&self, key: &str, claims: &ObjectClaims) -> String {
        self.seal_in(OBJECT_CONTEXT, "", key, claims)
    }

    /// Verifies a small file's `token` for `key` and returns its claims, checking that it has not
    /// expired at `now`. The principal is checked by the caller.
    pub fn open_object(&self, key: &str, token: &str, now: u64) -> Result<ObjectClaims, Error> {
        let invalid = |why: &str| Error::Forbidden {
            code: ErrorCode::InvalidUploadToken,
            message: format!(
                "the small-file token {why}; pass the key and token returned by /s3/params \
                 unchanged, or upload the file again"
            ),
        };
        let claims: ObjectClaims = self.open_in(OBJECT_CONTEXT, "", key, token, &invalid)?;
        if claims.expires_at <= now {
            return Err(invalid("has expired"));
        }
        Ok(claims)
    }

    fn seal_in(&self, context: &[u8], id: &str, key: &str, claims: &impl Serialize) -> String {
        // Serialising a struct of strings and numbers cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let tag = tag(&self.current, context, id, key, &json);
        let mut raw = Vec::with_capacity(TAG_LEN + json.len());
        raw.extend_from_slice(&tag);
        raw.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The claims of `token` when its tag verifies under the current or the previous secret;
    /// `invalid` words the refusal.
    fn open_in<C: DeserializeOwned>(
        &self,
        context: &[u8],
        id: &str,
        key: &str,
        token: &str,
        invalid: &dyn Fn(&str) -> Error,
    ) -> Result<C, Error> {
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Err(invalid("is missing or malformed"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid("is malformed"))?;
        if raw.len() <= TAG_LEN {
            return Err(invalid("is malformed"));
        }
        let (given, json) = raw.split_at(TAG_LEN);
        // `verify_slice` compares in constant time.
        let verifies = |secret: &[u8]| {
            mac(secret, context, id, key, json)
                .verify_slice(given)
                .is_ok()
        };
        let ok = verifies(&self.current) || self.previous.as_deref().is_some_and(verifies);
        if !ok {
            return Err(invalid(
                "is not valid for this upload and key (forged, or taken from another upload)",
            ));
        }
        serde_json::from_slice(json).map_err(|_| invalid("is malformed"))
    }
}

type HmacSha256 = Hmac<Sha256>;

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key length")
}

/// The tag input is length-prefixed field by field, so no two (context, id, key, claims) share one.
fn mac(secret: &[u8], context: &[u8], id: &str, key: &str, claims: &[u8]) -> HmacSha256 {
    let mut mac = new_mac(secret);
    for field in [context, id.as_bytes(), key.as_bytes(), claims] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac
}

fn tag(secret: &[u8], context: &[u8], id: &str, key: &str, claims: &[u8]) -> [u8; TAG_LEN] {
    mac(secret, context, id, key, claims)
        .finalize()
        .into_bytes()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> UploadClaims {
        UploadClaims {
            principal: principal_digest("alice"),
            expires_at: 1_000,
            size: Some(10),
            part_size: Some(5 << 20),
            max_size: None,
            checksum: None,
        }
    }

    fn code(e: Error) -> ErrorCode {
        e.code()
    }

    #[test]
    fn a_sealed_token_opens_for_its_upload_and_key_only() {
        let s = UploadSecrets::new(&[7; 32], None).unwrap();
        let t = s.seal("up.1~x", "k/a", &claims());
        assert!(!t.contains('.'), "{t}");
        assert_eq!(s.open("up.1~x", "k/a", &t, 999).unwrap(), claims());
        for (id, key) in [("up.1~y", "k/a"), ("up.1~x", "k/b")] {
            let e = s.open(id, key, &t, 999).unwrap_err();
            assert_eq!(code(e), ErrorCode::InvalidUploadToken);
        }
        let e = s.open("up.1~x", "k/a", &t, 1_000).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
    }

    #[test]
    fn forged_and_tampered_tokens_are_refused() {
        let s = UploadSecrets::new(&[7; 32], None).unwrap();
        let other = UploadSecrets::new(&[8; 32], None).unwrap();
        let forged = other.seal("u", "k", &claims());
        assert!(s.open("u", "k", &forged, 0).is_err());
        // Change the claims but keep the tag: a larger size.
        let t = s.seal("u", "k", &claims());
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let json = String::from_utf8(raw.split_off(TAG_LEN)).unwrap();
        raw.extend_from_slice(json.replace("\"s\":10", "\"s\":99").as_bytes());
        assert!(s.open("u", "k", &URL_SAFE_NO_PAD.encode(raw), 0).is_err());
        for junk in ["", "!!!", "AAAA", &"A".repeat(600)] {
            assert!(s.open("u", "k", junk, 0).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_previous_secret_still_opens_tokens_after_rotation() {
        let old = UploadSecrets::new(&[1; 32], None).unwrap();
        let t = old.seal("u", "k", &claims());
        let rotated = UploadSecrets::new(&[2; 40], Some(&[1; 32])).unwrap();
        assert!(rotated.open("u", "k", &t, 0).is_ok());
        let fresh = UploadSecrets::new(&[2; 40], None).unwrap();
        assert!(fresh.open("u", "k", &t, 0).is_err());
    }

    #[test]
    fn small_file_tokens_open_for_their_key_only_and_never_as_upload_tokens() {
        let s = UploadSecrets::new(&[7; 32], Some(&[9; 32])).unwrap();
        let object = ObjectClaims {
            principal: principal_digest("alice"),
            expires_at: 1_000,
            size: Some(10),
            max_size: None,
            content_type: "image/png".into(),
        };
        let t = s.seal_object("k/a.png", &object);
        assert_eq!(s.open_object("k/a.png", &t, 999).unwrap(), object);
        assert!(s.open_object("k/b.png", &t, 999).is_err());
        let e = s.open_object("k/a.png", &t, 1_000).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        // Sealed under the previous secret, still good after a rotation.
        let old = UploadSecrets::new(&[9; 32], None).unwrap();
        assert!(
            s.open_object("k/a.png", &old.seal_object("k/a.png", &object), 0)
                .is_ok()
        );
        // The kinds never stand in for each other, even with the same key and an empty id.
        let upload = s.seal("", "k/a.png", &claims());
        assert!(s.open_object("k/a.png", &upload, 0).is_err());
        assert!(s.open("", "k/a.png", &t, 0).is_err());
    }

    #[test]
    fn secrets_are_long_enough_and_never_printed() {
        assert!(UploadSecrets::new(b"short", None).is_err());
        let s = UploadSecrets::new(b"0123456789abcdef0123456789abcdef", None).unwrap();
        assert!(!format!("{s:?}").contains("0123"));
    }
}
