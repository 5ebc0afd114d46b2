//! doctor's **small-file form** probe: a small file sent as Companion clients (Uppy) send it, a
//! POST policy form as `GET /s3/params` answers them, POSTed with `Origin` (a form needs no
//! preflight). The store must take it and let the page read the answer. The file's name is not
//! ASCII: a store that refuses it but takes the same form with an ASCII name drops non-ASCII form
//! fields, and the verdict says so. The objects are deleted afterwards.

use reqwest::header::HeaderMap;

use super::browser::{judge_form, judge_non_ascii_form};
use super::probe::{Probe, unanswered};
use super::report::Status;
use crate::store::{PostSigning, S3Store, Store};

/// Name of doctor's small-file test object. Not ASCII on purpose: real file names often are not,
/// and a store built against `http` 1.6 (Garage 2.5.0 built without `--locked`) silently drops
/// every POST-form field that is not visible ASCII, the key among them (docs/stores.md,
/// "Small-file POST forms").
const FORM_TEST_NAME: &str = "doctor-prüfung-größe.txt";
/// The same test with an ASCII name, sent only when the first form is refused, to tell a store
/// that drops non-ASCII form fields from one that refuses forms altogether.
const FORM_TEST_NAME_ASCII: &str = "doctor-test.txt";

/// What the store answered a form POST: status, headers and body; or why no answer came.
type FormAnswer = Result<(u16, HeaderMap, String), reqwest::Error>;

/// POSTs a small file in the form `GET /s3/params` answers Companion clients, with `Origin`, and
/// deletes it again. The file's name holds non-ASCII characters; if the store refuses it, the
/// same form with an ASCII name is tried to name the cause.
pub(super) async fn small_file_form(probe: &Probe<'_>) -> ((Status, String), bool) {
    let Some(origin) = probe.origin else {
        return (
            (
                Status::Warn,
                "no page origin to test with: give --cors-origin or --origin".to_owned(),
            ),
            false,
        );
    };
    let folder = format!(
        "{}.s3-direct-doctor/{}/",
        probe.key_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let key = format!("{folder}{FORM_TEST_NAME}");
    let answer = match post_test_form(probe, origin, &key).await {
        Ok(answer) => answer,
        Err(why) => return (why, false),
    };
    let mut keys = vec![key];
    let ((status, message), cors) = match answer {
        Ok((status, headers, _)) if (200..300).contains(&status) => {
            let (status, message, cors) = judge_form(origin, &headers);
            ((status, message), cors)
        }
        Ok((status, _, body)) => {
            // Refused: is it the name? The same form with an ASCII key tells.
            let ascii_key = format!("{folder}{FORM_TEST_NAME_ASCII}");
            let ascii = post_test_form(probe, origin, &ascii_key).await;
            keys.push(ascii_key);
            let ascii_status = match &ascii {
                Ok(Ok((status, _, _))) => Some(*status),
                _ => None,
            };
            let (status, message) = judge_non_ascii_form(status, &body, ascii_status);
            ((status, message), false)
        }
        Err(e) => (
            unanswered(
                &e,
                probe.store.config().public_endpoint(),
                "the form POST failed",
                Status::Warn,
            ),
            false,
        ),
    };
    // Leave nothing behind.
    if let Err((key, e)) = delete_test_objects(probe.store, keys).await {
        let message = format!(
            "{message}; and deleting the test object {key} failed ({e}): delete it by hand"
        );
        return ((Status::Warn, message), cors);
    }
    ((status, message), cors)
}

/// Deletes the test objects (deleting one that was not stored succeeds); `Err` names the first
/// that could not be deleted, and why.
async fn delete_test_objects(store: &S3Store, keys: Vec<String>) -> Result<(), (String, String)> {
    for key in keys {
        let deleted = store
            .client()
            .delete_object()
            .bucket(&store.config().bucket)
            .key(&key)
            .send()
            .await;
        if let Err(e) = deleted {
            let why = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
            return Err((key, why));
        }
    }
    Ok(())
}

/// Signs a POST form for `key` as `GET /s3/params` signs one and POSTs the test file with it;
/// `Err` is the verdict when no form can be signed.
async fn post_test_form(
    probe: &Probe<'_>,
    origin: &str,
    key: &str,
) -> Result<FormAnswer, (Status, String)> {
    const BODY: &[u8] = b"s3-direct doctor: a test file, deleted right after this request\n";
    let signing = PostSigning {
        content_type: "text/plain".to_owned(),
        metadata: Default::default(),
        size: 0..=BODY.len() as u64,
    };
    let form = match probe
        .store
        .presign_post(key, &signing, probe.url_lifetime)
        .await
    {
        Ok(Some(form)) => form,
        Ok(None) => {
            return Err((
                Status::NotApplicable,
                "the server signs no POST forms for this endpoint (an endpoint with a path, or \
                 a bucket that is no DNS name with virtual-hosted addressing): Companion \
                 clients get presigned PUTs, which Uppy 5 follows and Uppy 6 cannot"
                    .to_owned(),
            ));
        }
        Err(e) => return Err((Status::Warn, format!("cannot sign a POST form: {e}"))),
    };
    let mut body = reqwest::multipart::Form::new();
    for (name, value) in form.fields {
        body = body.text(name, value);
    }
    body = body.part("file", reqwest::multipart::Part::bytes(BODY));
    let answer = probe
        .http
        .post(&form.url)
        .header("origin", origin)
        .multipart(body)
        .send()
        .await;
    Ok(match answer {
        Ok(answer) => {
            let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
            Ok((status, headers, answer.text().await.unwrap_or_default()))
        }
        Err(e) => Err(e),
    })
}
