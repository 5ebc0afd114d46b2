//! Files of a folder the user chose: the key keeps their folders (`relativePath`), each sanitised
//! like a name; a multipart upload and a small file both complete under it; a path that leaves the
//! chosen folder, or names another file, is refused before anything is stored.

use axum::http::StatusCode;
use s3_direct_protocol::ErrorCode;
use s3_direct_protocol::wire::{CompleteResponse, CreateMultipartResponse, SinglePutParams};
use serde_json::json;

use super::{complete, get_object, put_part, sign_batch};
use crate::common::{Embedded, enc, get, post_json};

#[tokio::test]
async fn a_file_of_a_folder_is_stored_under_its_sanitised_folders() {
    let e = Embedded::start().await;
    let body = json!({
        "filename": "IMG 1.jpg",
        "relativePath": "Holiday 🎉/.thumbs/día 1/IMG 1.jpg",
    });
    let created: CreateMultipartResponse = post_json(&e.app, "/s3/multipart", body.to_string())
        .await
        .ok();
    let key = created.key;
    assert!(key.ends_with("/Holiday 🎉/thumbs/día 1/IMG 1.jpg"), "{key}");
    let batch = sign_batch(&e, &key, &created.upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], b"in a folder".to_vec()).await;
    let done: CompleteResponse = complete(&e, &key, &created.upload_id, &[(1, &etag)])
        .await
        .ok();
    assert_eq!(done.key, key);
    assert_eq!(get_object(&e, &key).await.0, b"in a folder");

    // A small file of the same folder, sent as one PUT.
    let small: SinglePutParams = get(
        &e.app,
        &format!(
            "/s3/params?filename=notes.txt&type=text%2Fplain&method=PUT&size=5&relativePath={}",
            enc("Holiday 🎉/notes.txt")
        ),
    )
    .await
    .ok();
    assert!(
        small.key.ends_with("/Holiday 🎉/notes.txt"),
        "{}",
        small.key
    );
    let mut req = crate::common::http().put(&small.url).body("notes");
    for (name, value) in &small.headers {
        req = req.header(name, value);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let body = json!({ "key": small.key, "token": small.token.as_deref().unwrap() });
    let done: CompleteResponse = post_json(&e.app, "/s3/params/complete", body.to_string())
        .await
        .ok();
    assert_eq!(get_object(&e, &done.key).await.0, b"notes");
}

#[tokio::test]
async fn a_path_leaving_the_folder_or_naming_another_file_is_refused() {
    let e = Embedded::start().await;
    for (filename, path) in [
        ("passwd", "../../etc/passwd"),
        ("a.bin", "photos/../../a.bin"),
        ("a.bin", "photos/b.bin"),
        ("a.bin", "pho\0tos/a.bin"),
    ] {
        let body = json!({ "filename": filename, "relativePath": path });
        post_json(&e.app, "/s3/multipart", body.to_string())
            .await
            .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidFilename);
        get(
            &e.app,
            &format!(
                "/s3/params?filename={}&relativePath={}",
                enc(filename),
                enc(path)
            ),
        )
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidFilename);
    }
    assert!(e.open_uploads().is_empty() && e.objects().is_empty());
}

#[tokio::test]
async fn a_key_with_forged_folders_is_refused() {
    let e = Embedded::start().await;
    let body = json!({ "filename": "a.bin", "relativePath": "docs/a.bin" });
    let created: CreateMultipartResponse = post_json(&e.app, "/s3/multipart", body.to_string())
        .await
        .ok();
    let (id, _) = created
        .key
        .strip_prefix("uploads/")
        .unwrap()
        .split_once('/')
        .unwrap();
    for forged in [
        format!("uploads/{id}/docs/../../a.bin"),
        format!("uploads/{id}/docs//a.bin"),
        format!("uploads/{id}/.docs/a.bin"),
    ] {
        get(
            &e.app,
            &format!(
                "/s3/multipart/{}/batch?key={}&partNumbers=1",
                created.upload_id,
                enc(&forged)
            ),
        )
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::InvalidKey);
    }
}
