//! An upload of unknown size (a stream: `partSize` declared, no `size`) on the embedded store:
//! each part URL signs the length the client names, the store refuses a body of another length,
//! and the object of equal parts and a short last one is stored byte for byte.

use s3_direct_protocol::limits::MIB;
use s3_direct_protocol::wire::{CompleteResponse, CreateMultipartResponse};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{complete, get_object, put, put_part, sign_sized};
use crate::common::{Embedded, post_json, test_bytes};

#[tokio::test]
async fn a_stream_of_equal_parts_and_a_short_last_one_is_stored_byte_for_byte() {
    let e = Embedded::start().await;
    let part_size = 5 * MIB;
    let body = json!({"filename": "rec.webm", "type": "video/webm", "partSize": part_size});
    let up: CreateMultipartResponse = post_json(&e.app, "/s3/multipart", body.to_string())
        .await
        .ok();
    let bytes = test_bytes(2 * part_size as usize + 1, 7);
    let chunks: Vec<&[u8]> = bytes.chunks(part_size as usize).collect();
    let sizes: Vec<(u32, u64)> = (1..).zip(chunks.iter().map(|c| c.len() as u64)).collect();
    let batch = sign_sized(&e, &up.key, &up.upload_id, &sizes).await;
    // A body of another length than signed is refused by the store.
    let longer = [chunks[2], b"x"].concat();
    assert_eq!(put(&batch.presigned_urls[&3], longer).await.status(), 403);
    let mut etags = Vec::new();
    for (n, chunk) in (1..).zip(&chunks) {
        etags.push((n, put_part(&batch.presigned_urls[&n], chunk.to_vec()).await));
    }
    let named: Vec<(u32, &str)> = etags.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let done: CompleteResponse = complete(&e, &up.key, &up.upload_id, &named).await.ok();
    assert_eq!(done.size, bytes.len() as u64);
    let (stored, content_type) = get_object(&e, &up.key).await;
    assert_eq!(Sha256::digest(&stored), Sha256::digest(&bytes));
    assert_eq!(content_type.as_deref(), Some("video/webm"));
}
