//! Small files, sent as one presigned PUT or POST form instead of a multipart upload.
//!
//! [`Caller::small_file`] (`GET /s3/params`) signs the PUT URL or the POST policy: the declared
//! size (exact) or the caller's size limit (a POST policy's `content-length-range`; a PUT without
//! a length is refused for a caller with a limit), the content type and the metadata. Beside it,
//! it answers a token ([`ObjectClaims`]) sealed with the upload secret, binding the key, the
//! caller, the declared size or the size bound, the content type and an expiry, so the completion
//! needs no state.
//!
//! The server never sees the file arrive. When the browser reports it done
//! ([`Caller::complete_small`], `POST /s3/params/complete`), the object is read back with
//! `HeadObject` and held to the token, as [`super::completion`] holds a multipart object: an
//! object that breaks it is deleted, and the answer's facts ([`VerifiedObject`]) are the store's.
//! Nothing changes in the store when the object is good, so calling it again answers the same.
//! The receipt's `upload_id` is the object key: a single PUT has no store upload id, and every
//! params answer issues a new key, so the key identifies this upload as an upload id would.

use std::collections::BTreeMap;
use std::time::Duration;

use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::limits::MAX_SINGLE_PUT_SIZE;
use s3_direct_protocol::wire::{CompleteResponse, ObjectCompleteRequest, SinglePutParams};

use super::Caller;
use super::completion::{Finished, VerifiedObject};
use crate::config::SmallFileMethod;
use crate::error::Error;
use crate::keys::truncate_for_message;
use crate::media_type::MediaType;
use crate::policy::{self, now_secs};
use crate::store::{ObjectHead, PostSigning, PutSigning, Store};
use crate::token::{ObjectClaims, principal_digest};
use crate::validate;

/// What `GET /s3/params` asks for, decoded from its query.
#[derive(Debug, Clone)]
pub struct SmallFileRequest {
    pub filename: String,
    /// The file's path within a folder the user chose, when it came from one.
    pub relative_path: Option<String>,
    /// The file's size, when the caller declares it.
    pub size: Option<u64>,
    /// The file's type, parsed.
    pub content_type: MediaType,
    /// `PUT` or `POST` (any case), how the caller will send the file, when it says.
    pub method: Option<String>,
    /// `ALGO:BASE64` checksum of the whole file, to sign into a PUT URL.
    pub checksum: Option<String>,
    /// The file's metadata, `name → value`.
    pub metadata: BTreeMap<String, String>,
}

impl SmallFileRequest {
    /// Whether the caller gets a POST policy (`true`) or a presigned `PUT`: what `method` asks
    /// for; without it, `usual` (`--small-file-method`) for callers that pass neither `size` nor
    /// `checksum`, a PUT for the others.
    fn wants_post(&self, usual: SmallFileMethod) -> Result<bool, Error> {
        let post = match self.method.as_deref() {
            None => {
                self.size.is_none() && self.checksum.is_none() && usual == SmallFileMethod::Post
            }
            Some(m) if m.eq_ignore_ascii_case("POST") => true,
            Some(m) if m.eq_ignore_ascii_case("PUT") => false,
            Some(m) => {
                return Err(Error::bad_request(
                    ErrorCode::InvalidRequest,
                    format!(
                        "method {:?} is neither PUT nor POST",
                        truncate_for_message(m)
                    ),
                ));
            }
        };
        if post && self.checksum.is_some() {
            return Err(Error::bad_request(
                ErrorCode::InvalidRequest,
                "a checksum is signed into a PUT only; ask for method=PUT",
            ));
        }
        Ok(post)
    }
}

/// A small file about to be signed: its key and token issued, its type and metadata checked.
#[derive(Debug)]
struct SmallFile {
    key: String,
    bucket: String,
    size: Option<u64>,
    /// Normalised.
    content_type: String,
    metadata: BTreeMap<String, String>,
    lifetime: Duration,
    token: String,
}

impl Caller<'_> {
    /// The presigned PUT or POST form of the small file `req` names, with its token; see the
    /// module docs.
    pub async fn small_file(&self, req: &SmallFileRequest) -> Result<SinglePutParams, Error> {
        let state = self.state;
        let size = req.size;
        if let Some(size) = size {
            validate::single_put_size(size)?;
        }
        self.check_declared_size(size, None)?;
        let post = req.wants_post(state.settings().small_file_method)?;
        let content_type = self.allowed_content_type(&req.content_type)?;
        let metadata = validate::metadata(&req.metadata)?;
        let key = self.issue_key(&req.filename, req.relative_path.as_deref())?;
        let file = SmallFile {
            bucket: state.store().bucket().to_owned(),
            lifetime: state.url_lifetime_now().await,
            token: self.small_file_token(&key, size, &content_type),
            key,
            size,
            content_type,
            metadata,
        };
        if post {
            if let Some(form) = self.post_form(&file).await? {
                return Ok(form);
            }
            tracing::debug!("the store signs no POST policies; answering a presigned PUT");
        }
        self.put_url(file, req.checksum.as_deref()).await
    }

    /// The POST form of `file`, when the store signs POST policies. The policy holds the file to
    /// the caller's size limit, which a PUT URL without a length cannot.
    async fn post_form(&self, file: &SmallFile) -> Result<Option<SinglePutParams>, Error> {
        let signing = PostSigning {
            content_type: file.content_type.clone(),
            metadata: file.metadata.clone(),
            size: match file.size {
                Some(n) => n..=n,
                None => {
                    0..=self
                        .principal
                        .max_size
                        .map_or(MAX_SINGLE_PUT_SIZE, |max| max.min(MAX_SINGLE_PUT_SIZE))
                }
            },
        };
        let store = self.state.store();
        let Some(form) = store
            .presign_post(&file.key, &signing, file.lifetime)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(SinglePutParams {
            method: "POST".to_owned(),
            url: form.url,
            fields: form.fields,
            headers: BTreeMap::new(),
            key: file.key.clone(),
            bucket: file.bucket.clone(),
            checksum: None,
            token: Some(file.token.clone()),
        }))
    }

    /// The presigned PUT of `file`, signing its declared length and the `checksum` the caller
    /// named (`ALGO:BASE64`, as the query carried it).
    async fn put_url(
        &self,
        file: SmallFile,
        checksum: Option<&str>,
    ) -> Result<SinglePutParams, Error> {
        if self.principal.max_size.is_some() && file.size.is_none() {
            return Err(Error::bad_request(
                ErrorCode::InvalidSize,
                "this caller's uploads have a size limit; pass the file's size as `size`",
            ));
        }
        let signing = PutSigning {
            content_type: file.content_type,
            content_length: file.size,
            metadata: file.metadata,
            checksum: checksum.map(policy::checksum).transpose()?,
        };
        let state = self.state;
        let presigned = state
            .store()
            .presign_put(&file.key, &signing, file.lifetime)
            .await?;
        // Uppy's @uppy/aws-s3 (5.x) takes a single upload's key and bucket from `fields` (where a
        // POST policy has them), whatever the method; a PUT sends no form, so they change nothing
        // else.
        let fields = BTreeMap::from([
            ("key".to_owned(), file.key.clone()),
            ("bucket".to_owned(), file.bucket.clone()),
        ]);
        Ok(SinglePutParams {
            method: "PUT".to_owned(),
            url: presigned.url,
            fields,
            headers: presigned.headers,
            key: file.key,
            bucket: file.bucket,
            checksum: state.checksum_asked().await,
            token: Some(file.token),
        })
    }

    /// The token of the small file `key` this caller may send: `size` bytes when declared, else
    /// at most its limit, of `content_type` (normalised), until the upload token lifetime.
    fn small_file_token(&self, key: &str, size: Option<u64>, content_type: &str) -> String {
        let claims = ObjectClaims {
            principal: principal_digest(&self.principal.id),
            expires_at: now_secs().saturating_add(self.state.settings().token_lifetime.as_secs()),
            size,
            max_size: self.principal.max_size.filter(|_| size.is_none()),
            content_type: content_type.to_owned(),
        };
        self.state.secrets().seal_object(key, &claims)
    }

    /// Verifies the small file `req` reports done against its token and answers it with its
    /// receipt; see the module docs.
    pub async fn complete_small(
        &self,
        req: &ObjectCompleteRequest,
    ) -> Result<CompleteResponse, Error> {
        let key = self.checked_key(Some(&req.key))?;
        let claims = self
            .state
            .secrets()
            .open_object(key, &req.token, now_secs())?;
        if claims.principal != principal_digest(&self.principal.id) {
            return Err(Error::Forbidden {
                code: ErrorCode::Forbidden,
                message: "this file was signed for another principal".to_owned(),
            });
        }
        let done = finish(self.state.store(), key, &claims).await?;
        tracing::info!(
            %key, size = done.object.size, etag = %done.object.etag, "small file completed"
        );
        self.answer(done, key).await
    }
}

/// Reads the small file under `key` back and holds it to `claims`; see the module docs.
async fn finish(store: &dyn Store, key: &str, claims: &ObjectClaims) -> Result<Finished, Error> {
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
                code: ErrorCode::ContentTypeNotAllowed,
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
            truncate_for_message(stored),
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
