//! A small file's completion: after its one PUT the engine reports it to the server
//! (`POST /params/complete`) with the token the params answer carried, retried like a multipart
//! completion, and the result is what the server verified, with its receipt. A server older than
//! the route does not fail the upload.

use s3_direct::engine::{ApiError, Phase, RetryPolicy, StallTimeout, UploadOptions, UploadResult};
use s3_direct_protocol::wire::ObjectCompleteRequest;

use crate::fakes::{
    BUCKET, Call, Gate, Harness, KEY, LOCATION, RECEIPT, SINGLE_PUT_OBJECT, Script, VERIFIED_ETAG,
    etag, single_put_token, verified_crc,
};
use crate::options;

const SMALL: u64 = 1000;

fn small_options() -> UploadOptions {
    UploadOptions {
        single_put_threshold: 5 * 1024 * 1024,
        retry: RetryPolicy {
            retries: 2,
            base_delay_ms: 1000.0,
            max_delay_ms: 8000.0,
        },
        stall_timeout: StallTimeout::Fixed(0.0),
        ..options(6)
    }
}

fn status(status: u16, code: Option<&str>) -> ApiError {
    ApiError::Status {
        status,
        code: code.map(str::to_owned),
        message: String::new(),
        retry_after_ms: None,
    }
}

/// What the PUT alone shows: no receipt.
fn unverified() -> UploadResult {
    UploadResult {
        key: KEY.into(),
        bucket: BUCKET.into(),
        location: SINGLE_PUT_OBJECT.into(),
        etag: etag(1),
        size: SMALL,
        checksum: None,
        whole_file: Default::default(),
        receipt: None,
    }
}

#[test]
fn a_small_file_is_reported_done_and_the_result_is_what_the_server_verified() {
    let script = Script {
        hold: vec![Gate::Complete],
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, small_options(), script);
    h.run();
    h.store(1);
    assert_eq!(
        h.signer.calls()[1..],
        [Call::CompleteSingle(ObjectCompleteRequest {
            key: KEY.into(),
            token: single_put_token(0),
        })]
    );
    assert!(h.result().is_none(), "done only once the server answered");
    let last = *h.progress().last().unwrap();
    assert_eq!(last.phase, Phase::Completing);
    assert_eq!(
        h.progress()
            .iter()
            .filter(|p| p.phase == Phase::Done)
            .count(),
        0,
        "not done while verifying"
    );
    h.release(Gate::Complete);
    assert_eq!(
        h.result().unwrap().unwrap(),
        UploadResult {
            key: KEY.into(),
            bucket: BUCKET.into(),
            location: LOCATION.into(),
            etag: VERIFIED_ETAG.into(),
            size: SMALL,
            checksum: None,
            whole_file: verified_crc(),
            receipt: Some(RECEIPT.into()),
        }
    );
    assert_eq!(h.progress().last().unwrap().phase, Phase::Done);
}

/// The answer of the first completion was lost (the connection was cut after the server
/// answered): the engine asks again, as for a multipart completion, and gets the receipt; the
/// file is not sent again.
#[test]
fn a_completion_whose_answer_was_lost_is_asked_again() {
    let script = Script {
        complete_single_errors: vec![
            ApiError::Network("connection reset".into()),
            status(503, None),
        ],
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, small_options(), script);
    h.run();
    h.store(1);
    assert!(h.result().is_none());
    assert_eq!(
        h.clock.timers(),
        [750.0],
        "retried after the policy's delay"
    );
    h.advance(750.0);
    h.advance(1500.0);
    let result = h.result().unwrap().unwrap();
    assert_eq!(result.receipt.as_deref(), Some(RECEIPT));
    let completions = h
        .signer
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::CompleteSingle(_)))
        .count();
    assert_eq!(completions, 3);
    assert_eq!(h.sink.log().len(), 1, "the file went once");
}

#[test]
fn a_server_without_the_route_leaves_the_result_of_the_put() {
    // No token in the params answer: nothing to report.
    let older = Script {
        no_single_token: true,
        ..Script::default()
    };
    let mut h = Harness::start(SMALL, small_options(), older);
    h.run();
    h.store(1);
    assert_eq!(h.result().unwrap().unwrap(), unverified());
    assert!(
        !h.signer
            .calls()
            .iter()
            .any(|c| matches!(c, Call::CompleteSingle(_)))
    );
    // A token, but no route behind it (a proxy, another server): 404 or 405 without
    // `no_such_upload`.
    for missing in [
        status(404, Some("invalid_request")),
        status(404, None),
        status(405, None),
    ] {
        let script = Script {
            complete_single_errors: vec![missing],
            ..Script::default()
        };
        let mut h = Harness::start(SMALL, small_options(), script);
        h.run();
        h.store(1);
        assert_eq!(h.result().unwrap().unwrap(), unverified());
    }
}

#[test]
fn a_small_file_the_server_refuses_fails_with_its_code() {
    for (refusal, code) in [
        (status(404, Some("no_such_upload")), "no_such_upload"),
        (status(409, Some("plan_violated")), "plan_violated"),
        (
            status(403, Some("content_type_not_allowed")),
            "content_type_not_allowed",
        ),
    ] {
        let script = Script {
            complete_single_errors: vec![refusal],
            ..Script::default()
        };
        let mut h = Harness::start(SMALL, small_options(), script);
        h.run();
        h.store(1);
        assert_eq!(h.error().code(), code);
    }
}
