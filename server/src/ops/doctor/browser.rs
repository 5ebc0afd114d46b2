//! doctor's verdicts on what a page can do with the store's answers: the CORS preflight of a
//! part PUT, the PUT's answer (its `ETag` readable from the page's origin), and a small-file POST
//! form's answer, or why the store refused the form. Pure functions of status, headers and body.

use reqwest::header::HeaderMap;

use super::report::Status;
use crate::store::integrity::s3_error_code;

/// Why a browser's request would not get through, or its answer not be read: a sentence for the
/// report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked(pub String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True when a comma-separated CORS header lists `item` (case-insensitively) or `*`.
fn lists(value: Option<&str>, item: &str) -> bool {
    value.is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|x| x == "*" || x.eq_ignore_ascii_case(item))
    })
}

fn allows_origin(headers: &HeaderMap, origin: &str) -> bool {
    matches!(header(headers, "access-control-allow-origin"), Some(o) if o == "*" || o == origin)
}

/// The verdict on the preflight answer: `Err` says why a browser would not send the PUT.
pub fn judge_preflight(
    origin: &str,
    request_headers: &[&str],
    status: u16,
    headers: &HeaderMap,
) -> Result<(), Blocked> {
    if !(200..300).contains(&status) || !allows_origin(headers, origin) {
        return Err(Blocked(format!(
            "the store refused the CORS preflight from {origin} (status {status}, \
             Access-Control-Allow-Origin {:?}); the bucket's CORS rule must allow this origin \
             to PUT",
            header(headers, "access-control-allow-origin").unwrap_or("absent")
        )));
    }
    if !lists(header(headers, "access-control-allow-methods"), "PUT") {
        return Err(Blocked(format!(
            "the CORS preflight does not allow PUT from {origin} (Access-Control-Allow-Methods \
             {:?})",
            header(headers, "access-control-allow-methods").unwrap_or("absent")
        )));
    }
    let allowed = header(headers, "access-control-allow-headers");
    let missing: Vec<&str> = request_headers
        .iter()
        .copied()
        .filter(|h| !lists(allowed, h))
        .collect();
    if !missing.is_empty() {
        return Err(Blocked(format!(
            "the CORS preflight does not allow the request header(s) {} that the client sends \
             (Access-Control-Allow-Headers {:?})",
            missing.join(", "),
            allowed.unwrap_or("absent")
        )));
    }
    Ok(())
}

/// The verdict on the part PUT's answer: `Ok` with the ETag the page can read.
pub fn judge_put(
    origin: &str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> Result<String, Blocked> {
    if !(200..300).contains(&status) {
        let code = s3_error_code(body).unwrap_or("no S3 error code");
        return Err(Blocked(format!(
            "the presigned part PUT was refused: status {status} ({code}); check the \
             credentials, --region and that the store is reached at the public endpoint"
        )));
    }
    if !allows_origin(headers, origin) {
        return Err(Blocked(format!(
            "the PUT worked but its answer lacks Access-Control-Allow-Origin for {origin}, so \
             the browser hides the whole response; the bucket's CORS rule must allow this origin"
        )));
    }
    let Some(etag) = header(headers, "etag").filter(|e| !e.is_empty()) else {
        return Err(Blocked(
            "the PUT worked but the store sent no ETag".to_owned(),
        ));
    };
    if !lists(header(headers, "access-control-expose-headers"), "etag") {
        return Err(Blocked(format!(
            "the PUT worked but the page cannot read its ETag (Access-Control-Expose-Headers \
             {:?}); add ExposeHeaders: ETag to the bucket's CORS rule",
            header(headers, "access-control-expose-headers").unwrap_or("absent")
        )));
    }
    Ok(etag.to_owned())
}

/// The verdict on a small-file form whose key holds non-ASCII characters and that the store
/// refused with `status` and `body`, given what it answered (`ascii_status`) the same form with
/// an ASCII key.
pub fn judge_non_ascii_form(
    status: u16,
    body: &str,
    ascii_status: Option<u16>,
) -> (Status, String) {
    let code = s3_error_code(body).unwrap_or("no S3 error code");
    match ascii_status {
        Some(ascii) if (200..300).contains(&ascii) => (
            Status::Warn,
            format!(
                "the store refused a small file's POST form whose name is not ASCII (status \
                 {status}, {code}) and took the same form with an ASCII name: it drops form \
                 fields that are not ASCII, so every small file Companion clients (Uppy) send \
                 with such a name fails. Garage 2.5.0 built from source without --locked does \
                 this (it resolves http 1.6); rebuild it with `cargo install --locked garage \
                 --version 2.5.0`. Until then, for Uppy 5 run s3-direct with \
                 --small-file-method put (Uppy 6 sends small files only as forms)"
            ),
        ),
        _ => (
            Status::Warn,
            format!(
                "the store refused a small file's POST form: status {status} ({code}); Companion \
                 clients (Uppy) cannot upload files they send in one request (Uppy 5: give it \
                 shouldUseMultipart: true, or run s3-direct with --small-file-method put)"
            ),
        ),
    }
}

/// The verdict on the answer (its headers) to a small-file form POSTed from `origin` that the
/// store took, and whether the bucket's CORS rule is what needs fixing.
pub fn judge_form(origin: &str, headers: &HeaderMap) -> (Status, String, bool) {
    if !allows_origin(headers, origin) {
        return (
            Status::Warn,
            format!(
                "a small file's POST form from {origin} was stored, but the answer has no \
                 Access-Control-Allow-Origin for it, so the page sees a failed upload: allow POST \
                 in the bucket's CORS rule (Companion clients such as Uppy send small files so)"
            ),
            true,
        );
    }
    if header(headers, "etag").is_none()
        || !lists(header(headers, "access-control-expose-headers"), "etag")
    {
        return (
            Status::Warn,
            format!(
                "a small file's POST form from {origin} was stored and the page can read the \
                 answer, but not an ETag header in it (ETag {:?}, Access-Control-Expose-Headers \
                 {:?}): Uppy 6 does not need it, Uppy 5 waits for it forever; for Uppy 5, run \
                 s3-direct with --small-file-method put",
                header(headers, "etag").unwrap_or("absent"),
                header(headers, "access-control-expose-headers").unwrap_or("absent")
            ),
            header(headers, "etag").is_some(),
        );
    }
    (
        Status::Ok,
        format!(
            "a small file's POST form from {origin}, as Companion clients (Uppy) send it, with a \
             name that is not ASCII, was stored and the page can read the answer and its ETag"
        ),
        false,
    )
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    const ORIGIN: &str = "https://app.example.com";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_preflight_must_allow_the_origin_put_and_every_header_sent() {
        let good = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "GET, PUT, HEAD"),
            (
                "access-control-allow-headers",
                "content-type,x-amz-checksum-crc32c",
            ),
        ]);
        assert_eq!(
            judge_preflight(ORIGIN, &["x-amz-checksum-crc32c"], 200, &good),
            Ok(())
        );
        let star = headers(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "*"),
        ]);
        assert_eq!(
            judge_preflight(ORIGIN, &["content-md5"], 204, &star),
            Ok(())
        );
        // Garage and radosgw answer 403 with no CORS headers to an origin no rule allows.
        let err = judge_preflight(ORIGIN, &[], 403, &HeaderMap::new())
            .unwrap_err()
            .0;
        assert!(
            err.contains("refused the CORS preflight from https://app.example.com (status 403"),
            "{err}"
        );
        let other = headers(&[
            ("access-control-allow-origin", "https://other.example.com"),
            ("access-control-allow-methods", "PUT"),
        ]);
        assert!(judge_preflight(ORIGIN, &[], 200, &other).is_err());
        let get_only = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "GET"),
        ]);
        assert!(
            judge_preflight(ORIGIN, &[], 200, &get_only)
                .unwrap_err()
                .0
                .contains("does not allow PUT")
        );
        let err = judge_preflight(ORIGIN, &["content-md5"], 200, &good)
            .unwrap_err()
            .0;
        assert!(err.contains("request header(s) content-md5"), "{err}");
    }

    #[test]
    fn a_small_file_form_must_be_stored_and_its_answer_readable() {
        let readable = |origin: &str| {
            headers(&[
                ("access-control-allow-origin", origin),
                ("access-control-expose-headers", "ETag, Location"),
                ("etag", "\"abc\""),
            ])
        };
        assert_eq!(judge_form(ORIGIN, &readable(ORIGIN)).0, Status::Ok);
        assert_eq!(judge_form(ORIGIN, &readable("*")).0, Status::Ok);
        // Ceph 16 answers a form with the ETag in the XML body only.
        let allowed = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-expose-headers", "ETag"),
        ]);
        let (s, m, cors) = judge_form(ORIGIN, &allowed);
        assert!(!cors);
        assert_eq!(s, Status::Warn);
        assert!(m.contains("--small-file-method put"), "{m}");
        let (s, m, cors) = judge_form(ORIGIN, &headers(&[]));
        assert!(cors);
        assert_eq!(s, Status::Warn);
        assert!(m.contains("allow POST"), "{m}");
    }

    #[test]
    fn a_refused_form_is_told_apart_from_one_that_lost_its_non_ascii_fields() {
        let denied = "<Error><Code>AccessDenied</Code></Error>";
        let (s, m) = judge_non_ascii_form(403, denied, Some(403));
        assert_eq!(s, Status::Warn);
        assert!(m.contains("403 (AccessDenied)"), "{m}");
        assert!(!m.contains("not ASCII"), "{m}");
        let (_, m) = judge_non_ascii_form(403, denied, None);
        assert!(m.contains("403 (AccessDenied)"), "{m}");
        // Garage 2.5.0 built without --locked: the key field is dropped, the ASCII form is taken.
        let no_key = "<Error><Code>InvalidRequest</Code><Message>Bad request: No key was \
                      provided</Message></Error>";
        let (s, m) = judge_non_ascii_form(400, no_key, Some(204));
        assert_eq!(s, Status::Warn);
        for hint in [
            "not ASCII",
            "400, InvalidRequest",
            "cargo install --locked garage --version 2.5.0",
            "--small-file-method put",
        ] {
            assert!(m.contains(hint), "{hint:?} missing from {m}");
        }
    }

    #[test]
    fn a_put_must_expose_its_etag_to_the_origin() {
        let ok = headers(&[
            ("etag", "\"abc\""),
            ("access-control-allow-origin", ORIGIN),
            (
                "access-control-expose-headers",
                "ETag, x-amz-checksum-crc32",
            ),
        ]);
        assert_eq!(judge_put(ORIGIN, 200, &ok, ""), Ok("\"abc\"".to_owned()));
        let hidden = headers(&[("etag", "\"abc\""), ("access-control-allow-origin", ORIGIN)]);
        let err = judge_put(ORIGIN, 200, &hidden, "").unwrap_err().0;
        assert!(
            err.contains("add ExposeHeaders: ETag to the bucket's CORS rule"),
            "{err}"
        );
        assert!(
            err.contains("Access-Control-Expose-Headers \"absent\""),
            "{err}"
        );
        let no_origin = headers(&[
            ("etag", "\"abc\""),
            ("access-control-expose-headers", "ETag"),
        ]);
        assert!(
            judge_put(ORIGIN, 200, &no_origin, "")
                .unwrap_err()
                .0
                .contains("Access-Control-Allow-Origin")
        );
        let denied = judge_put(
            ORIGIN,
            403,
            &HeaderMap::new(),
            "<Error><Code>SignatureDoesNotMatch</Code></Error>",
        )
        .unwrap_err()
        .0;
        assert!(
            denied.contains("status 403 (SignatureDoesNotMatch)"),
            "{denied}"
        );
    }
}
