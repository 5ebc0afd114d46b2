//! Part checksums: computed before a part is signed, signed into its URL, sent as the header the
//! server names, passed to completion where S3 takes them, and summed up in the result.

use std::rc::Rc;

use s3_direct::engine::digest::{Digest, base64, base64_decode};
use s3_direct::engine::{
    ChecksumChoice, PutError, ServerChecksum, UploadOptions, hash_deadline_ms,
};
use s3_direct_protocol::PartPlan;
use s3_direct_protocol::wire::ChecksumAlgorithm;

use super::fakes::{Gate, Harness, MemoryResumeStore, Script, fake_sum};
use super::{PART, options, size_of};

fn asking(algorithm: ChecksumAlgorithm) -> Script {
    Script {
        checksum: Some(algorithm),
        ..Script::default()
    }
}

/// The default options with `algorithm` named, whatever the server asks for.
fn choosing(algorithm: ChecksumAlgorithm) -> UploadOptions {
    UploadOptions {
        checksum: ChecksumChoice::Use(algorithm),
        ..options(2)
    }
}

fn start_of(size: u64, part: u32) -> u64 {
    PartPlan::new(size, PART).unwrap().range(part).start
}

fn composite(algorithm: ChecksumAlgorithm, size: u64, parts: u32) -> String {
    let mut d = Digest::new(algorithm);
    for p in 1..=parts {
        d.update(&base64_decode(&fake_sum(start_of(size, p))).unwrap());
    }
    format!("{algorithm}:{}-{parts}", base64(&d.finish()))
}

#[test]
fn md5_is_signed_and_sent_as_content_md5_per_part() {
    let size = size_of(5);
    let mut h = Harness::start(size, options(2), asking(ChecksumAlgorithm::Md5));
    let result = h.finish(|p| p[0]).unwrap();

    for batch in h.signer.sign_checksums() {
        assert!(!batch.is_empty());
        for (part, sum) in batch {
            assert_eq!(sum, format!("md5:{}", fake_sum(start_of(size, part))));
        }
    }
    let signed: Vec<u32> = h
        .signer
        .sign_checksums()
        .iter()
        .flat_map(|b| b.keys().copied().collect::<Vec<_>>())
        .collect();
    assert_eq!(
        signed,
        [1, 2, 3, 4, 5],
        "every part is signed with its checksum"
    );
    for put in h.sink.log() {
        assert_eq!(
            put.headers.get("content-md5"),
            Some(&fake_sum(start_of(size, put.part))),
            "part {}",
            put.part
        );
    }
    let completed = h.signer.completed_with_checksums().unwrap();
    assert!(
        completed
            .iter()
            .all(|p| p.checksums.sha256.is_none() && p.checksums.crc32c.is_none()),
        "S3 takes no MD5 at completion"
    );
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Md5, size, 5))
    );
    assert_eq!(
        h.checksummer.computed.borrow().len(),
        5,
        "each part hashed once"
    );
}

#[test]
fn sha256_and_crc32c_are_passed_to_completion() {
    for algorithm in [ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Crc32c] {
        let size = size_of(3);
        let mut h = Harness::start(size, options(3), asking(algorithm));
        let result = h.finish(|p| p[0]).unwrap();
        let header = format!("x-amz-checksum-{algorithm}");
        for put in h.sink.log() {
            assert_eq!(
                put.headers.get(&header),
                Some(&fake_sum(start_of(size, put.part)))
            );
        }
        for p in h.signer.completed_with_checksums().unwrap() {
            let sum = Some(fake_sum(start_of(size, p.part_number)));
            match algorithm {
                ChecksumAlgorithm::Sha256 => assert_eq!(p.checksums.sha256, sum),
                _ => assert_eq!(p.checksums.crc32c, sum),
            }
        }
        assert_eq!(result.checksum, Some(composite(algorithm, size, 3)));
    }
}

#[test]
fn the_switch_overrides_the_server_or_turns_checksums_off() {
    let size = size_of(2);
    let off = UploadOptions {
        checksum: ChecksumChoice::Off,
        ..options(2)
    };
    let mut h = Harness::start(size, off, asking(ChecksumAlgorithm::Md5));
    let result = h.finish(|p| p[0]).unwrap();
    assert!(
        h.checksummer.computed.borrow().is_empty(),
        "nothing is read"
    );
    assert!(h.signer.sign_checksums().iter().all(|b| b.is_empty()));
    assert_eq!(result.checksum, None);

    let sha = choosing(ChecksumAlgorithm::Sha256);
    let mut h = Harness::start(size, sha, Script::default());
    let result = h.finish(|p| p[0]).unwrap();
    assert!(result.checksum.unwrap().starts_with("sha256:"));
    assert!(
        h.signer.sign_checksums()[0][&1].starts_with("sha256:"),
        "asked although the server did not"
    );
}

/// A checksum the client chose itself is known before the create answers: the first parts are
/// hashed while it is out (their PUTs need not wait for the hasher after it), and not again.
#[test]
fn a_chosen_checksum_starts_on_the_first_parts_while_the_upload_is_created() {
    let size = size_of(4);
    let sha = choosing(ChecksumAlgorithm::Sha256);
    let script = Script {
        hold: vec![Gate::Create],
        ..Script::default()
    };
    let mut h = Harness::start(size, sha, script);
    h.run();
    assert_eq!(
        *h.checksummer.computed.borrow(),
        [start_of(size, 1), start_of(size, 2)],
        "asked before the create answers"
    );
    h.release(Gate::Create);
    assert_eq!(h.signer.sign_checksums()[0].keys().next(), Some(&1));
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Sha256, size, 4))
    );
    let mut asked = h.checksummer.computed.borrow().clone();
    asked.sort_unstable();
    let starts: Vec<u64> = (1..=4).map(|p| start_of(size, p)).collect();
    assert_eq!(asked, starts, "each part hashed once");
    for put in h.sink.log() {
        assert_eq!(
            put.headers.get("x-amz-checksum-sha256"),
            Some(&fake_sum(start_of(size, put.part)))
        );
    }
}

/// With `auto` the algorithm is the server's, named in the create answer: nothing is read before.
#[test]
fn the_servers_checksum_starts_once_the_create_answers() {
    let script = Script {
        hold: vec![Gate::Create],
        ..asking(ChecksumAlgorithm::Md5)
    };
    let mut h = Harness::start(size_of(3), options(2), script);
    h.run();
    assert!(h.checksummer.computed.borrow().is_empty());
    h.release(Gate::Create);
    assert!(!h.checksummer.computed.borrow().is_empty());
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Md5, size_of(3), 3))
    );
}

/// With `auto`, what the server asked for last time is the guess: the first parts are hashed
/// while the create is out, and what it answers is remembered for the next upload.
#[test]
fn the_servers_last_checksum_starts_on_the_first_parts_while_the_upload_is_created() {
    let size = size_of(3);
    let memo = Rc::new(ServerChecksum::new(Some(ChecksumAlgorithm::Sha256)));
    let script = Script {
        hold: vec![Gate::Create],
        ..asking(ChecksumAlgorithm::Sha256)
    };
    let mut h = Harness::remembering(size, options(2), script, memo.clone());
    h.run();
    assert_eq!(
        *h.checksummer.computed.borrow(),
        [start_of(size, 1), start_of(size, 2)],
        "asked before the create answers"
    );
    h.release(Gate::Create);
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Sha256, size, 3))
    );
    assert_eq!(h.checksummer.computed.borrow().len(), 3, "each part once");
    assert_eq!(memo.get(), Some(ChecksumAlgorithm::Sha256));
}

/// A guess the server's answer contradicts: the early sums are dropped and the parts hashed with
/// the algorithm it asks for now; asking for none turns checksums off for this upload.
#[test]
fn a_wrong_guess_of_the_servers_checksum_is_dropped() {
    let size = size_of(3);
    let memo = Rc::new(ServerChecksum::new(Some(ChecksumAlgorithm::Crc32c)));
    let mut h = Harness::remembering(
        size,
        options(2),
        asking(ChecksumAlgorithm::Md5),
        memo.clone(),
    );
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Md5, size, 3))
    );
    assert_eq!(
        h.checksummer.computed.borrow().len(),
        2 + 3,
        "the two early CRC32C sums, then every part with MD5"
    );
    for put in h.sink.log() {
        assert!(!put.headers.contains_key("x-amz-checksum-crc32c"));
    }
    assert_eq!(memo.get(), Some(ChecksumAlgorithm::Md5));

    let mut h = Harness::remembering(size, options(2), Script::default(), memo.clone());
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(result.checksum, None);
    assert!(h.signer.sign_checksums().iter().all(|b| b.is_empty()));
    assert_eq!(memo.get(), None, "the server asks for none now");
}

/// An early checksum has the same deadline as any other, counted from when it was asked for.
#[test]
fn an_early_checksum_that_never_answers_is_asked_again_after_a_restart() {
    let size = size_of(2);
    let crc = choosing(ChecksumAlgorithm::Crc32c);
    let script = Script {
        hold: vec![Gate::Create],
        silent: Some((1, 1)),
        ..Script::default()
    };
    let mut h = Harness::start(size, crc, script);
    h.run();
    let deadline = hash_deadline_ms(30_000.0, PART).unwrap();
    h.advance(deadline - 1.0);
    h.release(Gate::Create);
    assert_eq!(h.checksummer.restarts.get(), 0, "not before the deadline");
    h.advance(1.0);
    assert_eq!(h.checksummer.restarts.get(), 1);
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Crc32c, size, 2))
    );
}

/// Stores name a damaged body `BadDigest` (Content-MD5; S3 for every algorithm) or, Garage for
/// x-amz-checksum-*, `InvalidDigest`: either way the part is sent again, not hashed again.
#[test]
fn a_body_the_store_finds_corrupted_is_sent_again_with_the_same_checksum() {
    for (algorithm, code) in [
        (ChecksumAlgorithm::Md5, "BadDigest"),
        (ChecksumAlgorithm::Crc32c, "InvalidDigest"),
    ] {
        let size = size_of(2);
        let mut h = Harness::start(size, options(2), asking(algorithm));
        h.run();
        h.refuse(1, 400, code);
        let wait = h.clock.timers()[0];
        h.advance(wait);
        h.finish(|p| p[0]).unwrap();
        let puts: Vec<_> = h.sink.log().into_iter().filter(|p| p.part == 1).collect();
        assert_eq!(puts.len(), 2, "{code}");
        assert_eq!(puts[0].headers, puts[1].headers, "{code}");
        assert_eq!(
            h.checksummer.computed.borrow().len(),
            2,
            "{code}: not hashed again"
        );
    }
}

#[test]
fn an_unreadable_file_fails_naming_the_part() {
    let script = Script {
        unreadable: Some(2),
        ..asking(ChecksumAlgorithm::Sha256)
    };
    let mut h = Harness::start(size_of(3), options(1), script);
    h.run();
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("file_unreadable", Some(2)));
    assert_eq!(
        e.to_string(),
        "part 2: the file could not be read (NotReadableError); a file changed, moved or deleted since it was chosen must be chosen again"
    );
    assert_eq!(h.signer.aborts(), 0);
}

#[test]
fn a_checksum_that_never_answers_is_asked_again_after_a_restart() {
    let size = size_of(3);
    let script = Script {
        silent: Some((2, 1)),
        ..asking(ChecksumAlgorithm::Sha256)
    };
    let mut h = Harness::start(size, options(1), script);
    h.run();
    // The parts around it go on.
    while let Some(&part) = h.pending().first() {
        h.store(part);
    }
    assert_eq!(h.sink.stored(), [1, 3], "part 2 waits for its checksum");
    let deadline = hash_deadline_ms(30_000.0, PART).unwrap();
    h.advance(deadline - 1.0);
    assert_eq!(h.checksummer.restarts.get(), 0, "not before the deadline");
    h.advance(1.0);
    assert_eq!(h.checksummer.restarts.get(), 1);
    let result = h.finish(|p| p[0]).unwrap();
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Sha256, size, 3))
    );
    let asked_for_2 = h
        .checksummer
        .computed
        .borrow()
        .iter()
        .filter(|&&start| start == start_of(size, 2))
        .count();
    assert_eq!(asked_for_2, 2, "part 2 hashed again after the restart");
}

#[test]
fn a_checksum_that_never_answers_fails_the_upload_after_the_retries() {
    let script = Script {
        silent: Some((1, u32::MAX)),
        ..asking(ChecksumAlgorithm::Crc32c)
    };
    let opts = options(2);
    let retries = opts.retry.retries;
    let mut h = Harness::start(size_of(2), opts, script);
    h.run();
    let deadline = hash_deadline_ms(30_000.0, PART).unwrap();
    for _ in 0..=retries {
        h.advance(deadline);
    }
    let e = h.error();
    assert_eq!((e.code(), e.part()), ("file_unreadable", Some(1)));
    assert_eq!(
        e.to_string(),
        format!(
            "part 1: the file could not be read (its checksum gave no answer in time, {} times); \
             a file changed, moved or deleted since it was chosen must be chosen again",
            retries + 1
        )
    );
    assert_eq!(h.checksummer.restarts.get(), retries);
    assert!(
        h.sink.log().iter().all(|put| put.part != 1),
        "part 1 was not sent without its checksum"
    );
}

#[test]
fn without_a_stall_timeout_a_checksum_has_no_deadline() {
    assert_eq!(hash_deadline_ms(0.0, PART), None);
    assert_eq!(hash_deadline_ms(30_000.0, 16_000_000), Some(46_000.0));
}

/// A SHA-256-checksummed upload of `size` that stored part 1 and then failed on part 2, leaving
/// its resume record in the returned store.
fn interrupted_after_part_1(size: u64) -> Rc<MemoryResumeStore> {
    let store = Rc::new(MemoryResumeStore::default());
    let mut first = Harness::resuming(
        size,
        options(1),
        asking(ChecksumAlgorithm::Sha256),
        store.clone(),
        1000.0,
    );
    first.run();
    first.store(1);
    first.reply(
        2,
        Err(PutError::status(
            400,
            "<Error><Code>InvalidArgument</Code></Error>",
        )),
    );
    first.error();
    store
}

#[test]
fn resumed_parts_keep_their_checksums_for_completion() {
    let size = size_of(3);
    let store = interrupted_after_part_1(size);

    let listed = vec![super::fakes::listed(1, PART)];
    let script = Script {
        listed: Ok(listed),
        ..asking(ChecksumAlgorithm::Sha256)
    };
    let mut second = Harness::resuming(size, options(1), script, store, 2000.0);
    let result = second.finish(|p| p[0]).unwrap();
    let completed = second.signer.completed_with_checksums().unwrap();
    assert_eq!(
        completed[0].checksums.sha256,
        Some(fake_sum(0)),
        "part 1's checksum came from the record"
    );
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Sha256, size, 3))
    );
}

#[test]
fn md5_is_sent_even_when_the_server_does_not_sign_it() {
    let size = size_of(2);
    let md5 = choosing(ChecksumAlgorithm::Md5);
    let script = Script {
        unsigned_checksums: true,
        ..Script::default()
    };
    let mut h = Harness::start(size, md5, script);
    h.finish(|p| p[0]).unwrap();
    for put in h.sink.log() {
        assert_eq!(
            put.headers.get("content-md5"),
            Some(&fake_sum(start_of(size, put.part)))
        );
    }
}

/// The create declares the part checksums the client will send, so that the store is created
/// for them (S3 refuses an `x-amz-checksum-*` part of an upload created without its algorithm):
/// the server's (`auto`) when following it, the chosen one, or none when checksums are off.
#[test]
fn the_create_declares_the_part_checksums_to_come() {
    use s3_direct_protocol::wire::PartChecksums;
    let cases = [
        (options(2), Some(PartChecksums::Auto)),
        (
            choosing(ChecksumAlgorithm::Crc32),
            Some(PartChecksums::Use(ChecksumAlgorithm::Crc32)),
        ),
        (
            UploadOptions {
                checksum: ChecksumChoice::Off,
                ..options(2)
            },
            None,
        ),
    ];
    for (options, declared) in cases {
        let mut h = Harness::start(size_of(2), options, asking(ChecksumAlgorithm::Crc32c));
        h.finish(|p| p[0]).unwrap();
        let Some(super::fakes::Call::Create(create)) = h.signer.calls().first().cloned() else {
            panic!("the first call creates the upload");
        };
        assert_eq!(create.checksum, declared);
    }
}

/// A part the record lacks (its PUT finished as the page died) is not sent again when the store
/// lists it with its checksum: an upload created for SHA-256 part checksums lists them.
#[test]
fn a_part_listed_with_its_checksum_is_not_sent_again() {
    let size = size_of(3);
    let store = interrupted_after_part_1(size);

    let part2 = fake_sum(start_of(size, 2));
    let mut stored = super::fakes::listed(2, PART);
    stored.checksums.sha256 = Some(part2.clone());
    let listed = vec![super::fakes::listed(1, PART), stored];
    let script = Script {
        listed: Ok(listed),
        ..asking(ChecksumAlgorithm::Sha256)
    };
    let mut second = Harness::resuming(size, options(1), script, store, 2000.0);
    let result = second.finish(|p| p[0]).unwrap();
    let sent: Vec<u32> = second.sink.log().iter().map(|put| put.part).collect();
    assert_eq!(sent, [3], "only the part the store does not hold is sent");
    let completed = second.signer.completed_with_checksums().unwrap();
    assert_eq!(completed[1].checksums.sha256, Some(part2));
    assert_eq!(
        result.checksum,
        Some(composite(ChecksumAlgorithm::Sha256, size, 3))
    );
}
