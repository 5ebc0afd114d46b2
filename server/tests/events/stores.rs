//! The server's own records (`Store::write_object`, `read_object`, `list_objects`) and one
//! delivery on the real stores, Garage and Ceph, when their `S3_DIRECT_TEST_*` variables are set.

use std::time::{Duration, SystemTime};

use s3_direct_server::{S3Store, Store};

use super::{Answer, Application, assert_drained, quick, replica, upload};
use crate::common::{store_from_env, store_not_configured};

async fn records_round_trip(store: &S3Store) {
    let prefix = ".s3-direct/events/";
    let before = SystemTime::now() - Duration::from_secs(120);
    for name in ["b", "a", "failed/c"] {
        let key = format!("{prefix}{name}.json");
        store
            .write_object(&key, key.as_bytes().to_vec())
            .await
            .unwrap();
    }
    store
        .write_object("uploads/x", b"x".to_vec())
        .await
        .unwrap();
    let listed = store.list_objects(prefix).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [".s3-direct/events/a.json", ".s3-direct/events/b.json"],
        "only what is directly in the folder"
    );
    let failed = store
        .list_objects(&format!("{prefix}failed/"))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    for o in &listed {
        assert!(o.last_modified > before, "{o:?}: no usable LastModified");
        assert_eq!(o.size, o.key.len() as u64, "{o:?}");
    }
    let key = format!("{prefix}a.json");
    assert_eq!(
        store.read_object(&key).await.unwrap(),
        Some(key.clone().into_bytes())
    );
    store.write_object(&key, b"again".to_vec()).await.unwrap();
    assert_eq!(
        store.read_object(&key).await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
    store.delete_object(&key).await.unwrap();
    assert_eq!(store.read_object(&key).await.unwrap(), None);
    for key in ["b", "failed/c"] {
        store
            .delete_object(&format!("{prefix}{key}.json"))
            .await
            .unwrap();
    }
    store.delete_object("uploads/x").await.unwrap();
}

/// Records, then a completion event refused once and then delivered, on `store`.
async fn on(store: Option<S3Store>, variable: &str) {
    let Some(store) = store else {
        return store_not_configured(variable);
    };
    let bucket = &store.config().bucket;
    store
        .client()
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    records_round_trip(&store).await;

    let app = Application::start(&[Answer::Status(503)], Answer::Status(200)).await;
    let (base, _) = replica(&store, quick(&app.url)).await;
    let done = upload(&base, "on-a-real-store.bin").await;
    let got = app
        .wait_for("the delivery", |d| {
            d.iter().any(|d| d.answered == Answer::Status(200))
        })
        .await;
    got.last().unwrap().assert_signed();
    assert_eq!(got.last().unwrap().json()["data"]["key"], done.key.as_str());
    assert_drained(&store).await;
}

#[tokio::test]
async fn garage_keeps_and_lists_pending_events() {
    on(
        store_from_env("GARAGE", "events"),
        "S3_DIRECT_TEST_GARAGE_ENDPOINT",
    )
    .await;
}

#[tokio::test]
async fn ceph_keeps_and_lists_pending_events() {
    on(
        store_from_env("CEPH", "events"),
        "S3_DIRECT_TEST_CEPH_ENDPOINT",
    )
    .await;
}
