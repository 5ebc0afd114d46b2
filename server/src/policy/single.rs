//! Completing a small file the application can trust.
//!
//! A small file goes to the store as one presigned PUT or POST form (`GET /s3/params`), which the
//! server never sees arrive. The answer carried a token ([`ObjectClaims`]) binding the key, the
//! caller, the declared size or the size bound, and the content type; when the browser reports the
//! file done, [`finish`] reads the object back with `HeadObject` and holds it to them, as
//! [`super::completion`] holds a multipart object: an object that breaks them is deleted, and the
//! answer's facts ([`VerifiedObject`]) are the store's. Nothing changes in the store when the
//! object is good, so calling it again answers the same.

use crate::error::Error;
use crate::store::{ObjectHead, Store};
use crate::token::ObjectClaims;
use crate::validate;

use super::completion::{Finished, VerifiedObject};

/// Reads the small file under `key` back and holds it to `claims`; see the module docs.
pub async fn finish(
    store: &dyn Store,
    key: &str,
    claims: &ObjectClaims,
) -> Result<Finished, Error> {
    let head = store.head_object(key).await?.ok_or_else(|| {
        Error::NoSuchObject(format!(
            "the store holds no object under {key:?}; send the file to the URL /s3/params \
             answered before reporting it done, or upload it again"
        ))
    })?;
    if let Some(why) = broken(claims, &head) {
        let refusal = why.into_error();
        tracing::warn!(%key, "deleting a small file that broke what was signed for it: {refusal}");
        store.delete_object(key).await?;
        return Err(refusal);
    }
    Ok(Finished {
        object: VerifiedObject {
            key: key.to_owned(),
            size: head.size,
            etag: head.etag,
            // A single PUT's verified CRC is the whole file's (the store's value, not the
            // client's).
            whole_file: crate::whole_file::of_single_put(head.checksum.as_deref()),
            checksum: head.checksum,
            // The type was signed into the URL or form; a store that reports none stored it.
            content_type: Some(
                head.content_type
                    .unwrap_or_else(|| claims.content_type.clone()),
            ),
        },
        location: store.object_location(key),
        earlier: false,
    })
}

/// How a stored small file breaks what was signed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Broken {
    /// Another size than declared, or more than the bound.
    Size(String),
    /// Another content type than signed.
    ContentType(String),
}

impl Broken {
    fn into_error(self) -> Error {
        match self {
            Self::Size(why) => Error::PlanViolated(format!(
                "{why}; the object was deleted, upload the file again"
            )),
            Self::ContentType(why) => Error::Forbidden {
                code: s3_direct_protocol::ErrorCode::ContentTypeNotAllowed,
                message: format!("{why}; the object was deleted, upload the file again"),
            },
        }
    }
}

fn broken(claims: &ObjectClaims, head: &ObjectHead) -> Option<Broken> {
    let size = head.size;
    if let Some(declared) = claims.size
        && size != declared
    {
        return Some(Broken::Size(format!(
            "the object holds {size} bytes, but {declared} were declared for it"
        )));
    }
    if let Some(max) = claims.max_size
        && size > max
    {
        return Some(Broken::Size(format!(
            "the object holds {size} bytes, more than this caller's limit of {max}"
        )));
    }
    let stored = head.content_type.as_deref()?;
    // Compared as media types (RFC 9110): case and spacing aside, the same type and parameters.
    let same = validate::content_type(stored)
        .is_ok_and(|parsed| parsed.to_string() == claims.content_type);
    (!same).then(|| {
        Broken::ContentType(format!(
            "the object was stored as {:?}, but its upload was signed for {:?}",
            crate::keys::truncate_for_message(stored),
            claims.content_type
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(size: Option<u64>, max_size: Option<u64>) -> ObjectClaims {
        ObjectClaims {
            principal: "p".into(),
            expires_at: 1,
            size,
            max_size,
            content_type: "text/plain;charset=utf-8".into(),
        }
    }

    fn head(size: u64, content_type: Option<&str>) -> ObjectHead {
        ObjectHead {
            size,
            etag: "\"e\"".into(),
            checksum: None,
            content_type: content_type.map(str::to_owned),
        }
    }

    #[test]
    fn a_small_file_holds_its_declared_size_its_bound_and_its_type() {
        let plain = Some("text/plain; charset=utf-8");
        assert_eq!(broken(&claims(Some(5), None), &head(5, plain)), None);
        assert_eq!(broken(&claims(None, Some(5)), &head(5, plain)), None);
        assert_eq!(broken(&claims(None, None), &head(1 << 40, plain)), None);
        // The same type, written otherwise.
        let spaced = Some("Text/Plain;Charset=utf-8");
        assert_eq!(broken(&claims(Some(5), None), &head(5, spaced)), None);
        // No type reported: the signed one stands.
        assert_eq!(broken(&claims(Some(5), None), &head(5, None)), None);

        let Some(Broken::Size(why)) = broken(&claims(Some(5), None), &head(6, plain)) else {
            panic!("another size than declared must be refused");
        };
        assert_eq!(why, "the object holds 6 bytes, but 5 were declared for it");
        assert!(matches!(
            broken(&claims(None, Some(5)), &head(6, plain)),
            Some(Broken::Size(_))
        ));
        for other in ["text/html", "text/plain", "text/plain,text/html"] {
            assert!(
                matches!(
                    broken(&claims(Some(5), None), &head(5, Some(other))),
                    Some(Broken::ContentType(_))
                ),
                "{other}"
            );
        }
    }
}
