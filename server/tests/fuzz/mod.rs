//! Property tests (bounded fuzzing) over request parsing and key naming. Each property runs a
//! fixed number of cases (`PROPTEST_CASES` overrides it), so `cargo test` stays fast and
//! deterministic enough to run on every change.
//!
//! - file names of any Unicode become keys with the documented shape, idempotently;
//! - arbitrary keys, upload ids, tokens, part numbers, batches and checksums never panic, and
//!   anything accepted has the shape the server issues;
//! - arbitrary bodies, paths and query strings sent through the router never get a 5xx and
//!   always get JSON, and never reach the store with anything but a create of a sane key.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use s3_direct_server::keys::{
    MAX_FOLDER_DEPTH, MAX_NAME_BYTES, sanitize_filename, sanitize_folders,
};
use s3_direct_server::store::FakeCall;
use s3_direct_server::{FakeStore, KeyPolicy, Settings, app, policy, validate};
use unicode_normalization::UnicodeNormalization;

use crate::common::{open_state, send, test_secrets};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings rich in the characters that break naive sanitizers.
fn nasty_string() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(" ".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("\u{2066}".to_owned()),
        Just("e\u{301}".to_owned()),
        Just("%".to_owned()),
        Just("🎉".to_owned()),
        "[a-z]{1,8}",
        "\\PC{1,4}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn file_names_become_safe_keys(name in nasty_string()) {
        let Ok(clean) = sanitize_filename(&name) else {
            // Only overlong input, NUL and `..` path segments are refused.
            let traversal = name.split(['/', '\\']).any(|s| s.trim() == "..");
            prop_assert!(name.len() > 1024 || name.contains('\0') || traversal, "{:?}", name);
            return Ok(());
        };
        prop_assert!(!clean.is_empty() && clean.len() <= MAX_NAME_BYTES);
        prop_assert!(!clean.contains('/') && !clean.contains('\\'));
        prop_assert!(!clean.starts_with('.'));
        prop_assert!(!clean.chars().any(char::is_control));
        let bidi = clean
            .chars()
            .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'));
        prop_assert!(!bidi, "bidi control left in {:?}", clean);
        prop_assert_eq!(clean.nfc().collect::<String>(), clean.clone());
        prop_assert_eq!(sanitize_filename(&clean).unwrap(), clean.clone());
        let policy = KeyPolicy::new("uploads/");
        let key = policy.issue(&name).unwrap();
        prop_assert_eq!(policy.check(&key).unwrap(), key.as_str());
        prop_assert_eq!(key.matches('/').count(), 2);
    }

    #[test]
    fn arbitrary_keys_are_refused_unless_they_have_the_issued_shape(key in nasty_string()) {
        let policy = KeyPolicy::new("uploads/");
        let candidates = [key.clone(), format!("uploads/{key}"),
            format!("uploads/0b6f4f0e-7a4c-4c59-9d0b-2f6f4a1d3c11/{key}")];
        for k in candidates {
            if let Ok(ok) = policy.check(&k) {
                let rest = ok.strip_prefix("uploads/").unwrap();
                let (id, path) = rest.split_once('/').unwrap();
                prop_assert_eq!(id.len(), 36);
                // Folders and name: each segment its own sanitized form (no "..", none empty).
                prop_assert!(path.split('/').count() <= MAX_FOLDER_DEPTH + 1);
                for segment in path.split('/') {
                    let again = sanitize_filename(segment).ok();
                    prop_assert_eq!(again.as_deref(), Some(segment));
                }
            }
        }
    }

    #[test]
    fn relative_paths_become_keys_inside_the_upload_s_folder(path in nasty_string(), name in nasty_string()) {
        let policy = KeyPolicy::new("uploads/");
        let full = format!("{path}/{name}");
        let Ok(folders) = sanitize_folders(&full, &name) else { return Ok(()) };
        let Ok(key) = policy.issue_in("uploads/", &folders, &name) else { return Ok(()) };
        prop_assert_eq!(policy.check(&key).unwrap(), key.as_str());
        prop_assert!(!key.split('/').any(|s| s == ".." || s == "." || s.is_empty()), "{:?}", key);
        prop_assert_eq!(key.matches('/').count(), 2 + folders.len());
    }

    #[test]
    fn scalar_parsers_never_panic(raw in "\\PC{0,40}", n in any::<u64>()) {
        let _ = validate::part_number(&raw);
        let _ = validate::part_number(&n.to_string());
        let _ = validate::batch(&raw);
        let _ = s3_direct_server::upload_id::check(&raw);
        let _ = validate::content_type(&raw);
        let _ = policy::checksum(&raw);
        let _ = policy::batch_checksums(&raw, &[1, 2, 3]);
        if let Ok(p) = validate::part_number(&raw) {
            prop_assert!((1..=10_000).contains(&p));
        }
    }

    #[test]
    fn arbitrary_upload_tokens_never_verify(token in "[A-Za-z0-9_-]{0,300}", key in "\\PC{0,20}") {
        prop_assert!(test_secrets().open("id", &key, &token, 0).is_err());
    }

    #[test]
    fn arbitrary_create_bodies_get_json_answers_and_no_5xx(body in prop::collection::vec(any::<u8>(), 0..400),
                                                         json_ish in "\\{(\"[a-zA-Z]{1,8}\":(\\d{1,25}|\"\\PC{0,10}\"|null|\\[\\]|-\\d{1,5}),?){0,6}\\}") {
        let rt = runtime();
        let store = Arc::new(FakeStore::new());
        let app = app(open_state(store.clone(), Settings { rate_per_minute: 0, ..Settings::default() }));
        for bytes in [body, json_ish.into_bytes()] {
            let req = Request::post("/s3/multipart")
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap();
            let reply = rt.block_on(send(&app, req));
            prop_assert!(reply.status.as_u16() < 500, "{}", reply.status);
            prop_assert_eq!(&reply.headers["content-type"], "application/json");
        }
        for call in store.calls() {
            let FakeCall::CreateMultipart(up) = call else {
                return Err(TestCaseError::fail(format!("unexpected store call {call:?}")));
            };
            prop_assert!(KeyPolicy::new("uploads/").check(&up.key).is_ok(), "{}", up.key);
        }
    }

    #[test]
    fn arbitrary_paths_and_queries_get_json_answers_and_never_reach_the_store(
        id in "[A-Za-z0-9._~%-]{1,60}",
        part in "[0-9a-z%+-]{0,12}",
        query in "[A-Za-z0-9=&%._~+-]{0,80}",
        method in prop_oneof![Just(Method::GET), Just(Method::DELETE), Just(Method::POST)],
        tail in prop_oneof![Just(""), Just("/batch"), Just("/complete"), Just("/1")],
    ) {
        let rt = runtime();
        let store = Arc::new(FakeStore::new());
        let app = app(open_state(store.clone(), Settings { rate_per_minute: 0, ..Settings::default() }));
        for uri in [
            format!("/s3/multipart/{id}{tail}?{query}"),
            format!("/s3/multipart/{id}/{part}?{query}"),
            format!("/s3/params?{query}"),
        ] {
            let Ok(req) = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"parts":[{"PartNumber":1,"ETag":"\"e\""}]}"#))
            else {
                continue;
            };
            let reply = rt.block_on(send(&app, req));
            prop_assert!(reply.status.as_u16() < 500, "{uri}: {}", reply.status);
            if reply.status.is_client_error() {
                prop_assert_eq!(&reply.headers["content-type"], "application/json");
            }
        }
        // Without a genuine upload token, only presigning a single PUT can happen.
        for call in store.calls() {
            prop_assert!(matches!(call, FakeCall::PresignPut { .. }), "{call:?}");
        }
    }
}
