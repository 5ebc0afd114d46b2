//! doctor's **browser upload** probe: a real multipart upload, one part presigned as the server
//! presigns it and sent as a browser sends it — the CORS preflight `OPTIONS` with `Origin`,
//! `Access-Control-Request-Method: PUT` and the request headers, then the `PUT` with `Origin`.
//! With a part checksum asked for, the upload is created for it and the part carries it, and a
//! second PUT with one byte changed must be refused. The upload is aborted afterwards, whatever
//! happened.

use s3_direct_protocol::wire::ChecksumAlgorithm;

use super::browser::{Blocked, judge_preflight, judge_put};
use super::judge::judge_checksum_check;
use super::probe::{Probe, unanswered};
use super::report::Status;
use crate::store::integrity::checksum_of;
use crate::store::{PartSigning, Store};

/// The test part's bytes.
const BODY: &[u8] = b"s3-direct doctor: a test part, aborted right after this request\n";

/// The part PUT a browser would make, and the cleanup after it.
pub(super) async fn browser_upload(
    probe: &Probe<'_>,
    asked: Option<ChecksumAlgorithm>,
) -> (Status, String) {
    let Some(origin) = probe.origin else {
        return (
            Status::Fail,
            "no page origin to test with: give --cors-origin https://app.example.com (the \
             origin of the page that uploads) or --origin"
                .to_owned(),
        );
    };
    let key = format!(
        "{}.s3-direct-doctor/{}",
        probe.key_prefix,
        uuid::Uuid::new_v4().simple()
    );
    // As the browser client creates it: for the part checksums `--checksum` asks for (MD5 needs
    // no declaring).
    let declared = asked.filter(|c| *c != ChecksumAlgorithm::Md5);
    let upload_id = match probe
        .store
        .create_multipart(crate::store::NewUpload {
            key: key.clone(),
            content_type: "application/octet-stream".to_owned(),
            metadata: Default::default(),
            checksum: declared,
        })
        .await
    {
        Ok(id) => id,
        Err(e) => return (Status::Fail, create_failed(&e, declared)),
    };
    let verdict = put_part(probe, asked, origin, &key, &upload_id).await;
    // Leave nothing behind, whatever happened.
    match probe.store.abort(&key, &upload_id).await {
        Ok(()) => verdict,
        Err(e) => {
            let status = if verdict.0 == Status::Fail {
                Status::Fail
            } else {
                Status::Warn
            };
            (
                status,
                format!(
                    "{}; and aborting the test upload {upload_id} of {key} failed ({e}): remove \
                     it with `s3-direct uploads abort`",
                    verdict.1
                ),
            )
        }
    }
}

/// Why the test upload could not be created, with what the store must allow.
fn create_failed(e: &crate::store::StoreError, declared: Option<ChecksumAlgorithm>) -> String {
    let detail = std::error::Error::source(e).map_or_else(String::new, |s| format!(": {s}"));
    let hint = match declared {
        Some(c) => format!(
            "; the credentials need write access, and the store must take uploads created for \
             {c} part checksums (x-amz-checksum-algorithm), as --checksum {c} asks: with a store \
             that cannot, use --checksum md5"
        ),
        None => "; the credentials need write access".to_owned(),
    };
    format!("CreateMultipartUpload failed{detail}{hint}")
}

/// Part 1 of the test upload as the page sends it: preflight, PUT, and with a checksum, the PUT
/// of a damaged copy.
async fn put_part(
    probe: &Probe<'_>,
    asked: Option<ChecksumAlgorithm>,
    origin: &str,
    key: &str,
    upload_id: &str,
) -> (Status, String) {
    let signing = PartSigning {
        content_length: Some(BODY.len() as u64),
        checksum: asked.map(|c| (c, checksum_of(c, BODY))),
    };
    let presigned = match probe
        .store
        .presign_part(key, upload_id, 1, probe.url_lifetime, &signing)
        .await
    {
        Ok(p) => p,
        Err(e) => return (Status::Fail, format!("cannot presign a part URL: {e}")),
    };
    // What the page sets itself: the signed headers a script may set, and the checksum the
    // server asks for.
    let sent: Vec<(String, String)> = presigned
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "content-length" | "host"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if let Err(verdict) = preflight(probe.http, &presigned.url, origin, &sent).await {
        return verdict;
    }
    let put = |body: Vec<u8>| {
        let mut put = probe
            .http
            .put(&presigned.url)
            .header("origin", origin)
            .body(body);
        for (name, value) in &sent {
            put = put.header(name, value);
        }
        put.send()
    };
    let answer = match put(BODY.to_vec()).await {
        Ok(r) => r,
        Err(e) => return unanswered(&e, &presigned.url, "the part PUT failed", Status::Fail),
    };
    let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
    let body = answer.text().await.unwrap_or_default();
    let etag = match judge_put(origin, status, &headers, &body) {
        Ok(etag) => etag,
        Err(why) => return (Status::Fail, put_refused(why, asked, status)),
    };
    let stored = format!(
        "a part PUT from {origin} passed the CORS preflight, was stored and its ETag {etag} is \
         readable by the page"
    );
    let Some(c) = asked else {
        return (Status::Ok, stored);
    };
    // The same signed request with one byte changed: the store must find that the checksum no
    // longer matches.
    let mut damaged = BODY.to_vec();
    damaged[0] ^= 1;
    match put(damaged).await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            judge_checksum_check(c, status, &body, &stored)
        }
        Err(e) => unanswered(
            &e,
            &presigned.url,
            "the PUT of a damaged part failed",
            Status::Warn,
        ),
    }
}

/// The CORS preflight of the part PUT, with the headers the page sends (the checksum header,
/// when there is one, is among them: it is signed); `Err` is the verdict when a browser would
/// not send the PUT.
async fn preflight(
    http: &reqwest::Client,
    url: &str,
    origin: &str,
    sent: &[(String, String)],
) -> Result<(), (Status, String)> {
    let requested: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    let mut preflight = http
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT");
    if !requested.is_empty() {
        preflight = preflight.header("access-control-request-headers", requested.join(","));
    }
    let answer = match preflight.send().await {
        Ok(r) => r,
        Err(e) => {
            return Err(unanswered(
                &e,
                url,
                "the CORS preflight could not be sent to the store",
                Status::Fail,
            ));
        }
    };
    judge_preflight(
        origin,
        &requested,
        answer.status().as_u16(),
        answer.headers(),
    )
    .map_err(|Blocked(why)| (Status::Fail, why))
}

/// The message for a part PUT the page could not use; a refused PUT that carried a checksum
/// names it, since a store that does not take it needs another setting.
fn put_refused(Blocked(why): Blocked, asked: Option<ChecksumAlgorithm>, status: u16) -> String {
    match asked {
        Some(c) if !(200..300).contains(&status) => format!(
            "{why}; the part carried its {c} checksum ({}), as --checksum {c} asks: a store \
             that does not take it needs --checksum md5 or off",
            c.header()
        ),
        _ => why,
    }
}
