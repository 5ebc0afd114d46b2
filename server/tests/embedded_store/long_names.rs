//! Names of any length and script complete an upload on the embedded store: the key keeps the
//! longest start of the name that fits the store's key limit (s3s-fs names a file after the whole
//! key, in base64, within 255 bytes), and the extension.

use s3_direct_protocol::wire::CompleteResponse;
use s3_direct_server::KeyPolicy;
use s3_direct_server::keys::sanitize_filename;

use super::{complete, get_object, put_part, sign_batch};
use crate::common::{Embedded, create};

/// Uploads a small file called `name` through the signing API; answers its key.
async fn upload_named(e: &Embedded, name: &str) -> String {
    let (key, upload_id) = create(&e.app, name).await;
    let batch = sign_batch(e, &key, &upload_id, "1").await;
    let etag = put_part(&batch.presigned_urls[&1], name.as_bytes().to_vec()).await;
    let done: CompleteResponse = complete(e, &key, &upload_id, &[(1, &etag)]).await.ok();
    assert_eq!(done.key, key);
    let (stored, _) = get_object(e, &key).await;
    assert_eq!(stored, name.as_bytes());
    key
}

/// `key` is `uploads/{uuid}/{start of the sanitised name}{its extension}`.
fn assert_shape(key: &str, name: &str, extension: &str) {
    assert_eq!(KeyPolicy::new("uploads/").check(key).unwrap(), key);
    let rest = key.strip_prefix("uploads/").unwrap();
    let (id, kept) = rest.split_once('/').unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "{key}");
    assert!(kept.ends_with(extension), "{key}");
    let clean = sanitize_filename(name).unwrap();
    assert!(
        clean.starts_with(kept.strip_suffix(extension).unwrap()),
        "{kept} does not start {clean}"
    );
    assert!(kept.len() < clean.len(), "{kept}");
}

#[tokio::test]
async fn a_300_character_ascii_name_completes_keeping_its_extension() {
    let e = Embedded::start().await;
    let name = format!("{}.mp4", "quarterly report ".repeat(18).trim_end());
    assert!(name.len() >= 300, "{}", name.len());
    let key = upload_named(&e, &name).await;
    assert_shape(&key, &name, ".mp4");
    assert!(e.open_uploads().is_empty());
}

#[tokio::test]
async fn a_120_character_cjk_name_completes_keeping_its_extension() {
    let e = Embedded::start().await;
    let name = format!("{}.pdf", "東京都の年次報告書".repeat(14));
    assert!(name.chars().count() >= 120, "{}", name.chars().count());
    let key = upload_named(&e, &name).await;
    assert_shape(&key, &name, ".pdf");
    // Cut between characters: what is kept is whole characters of the name.
    let kept = key.rsplit_once('/').unwrap().1;
    assert!(
        kept.chars()
            .all(|c| c == '.' || "東京都の年次報告書pdf".contains(c)),
        "{kept}"
    );
}

#[tokio::test]
async fn a_long_accented_name_completes() {
    let e = Embedded::start().await;
    // Decomposed on input; NFC makes each one two-byte character.
    let name = "e\u{301}".repeat(100);
    let key = upload_named(&e, &name).await;
    assert_shape(&key, &name, "");
}

/// The limit the server cuts names to is the store's own: a key of `max_key_bytes` is created,
/// one byte more fails in s3s-fs ("File name too long").
#[tokio::test]
async fn the_embedded_store_takes_keys_up_to_its_declared_limit_and_no_more() {
    use s3_direct_server::Store;
    let e = Embedded::start().await;
    let max = e.s3.max_key_bytes();
    assert!(max < 1024, "{max}");
    let create = |len: usize| {
        e.s3.client()
            .create_multipart_upload()
            .bucket(crate::common::BUCKET)
            .key("k".repeat(len))
            .send()
    };
    assert!(create(max).await.is_ok());
    assert!(create(max + 1).await.is_err());
}
