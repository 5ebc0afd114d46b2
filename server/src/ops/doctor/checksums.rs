//! `s3-direct doctor`'s **checksums** check: which part checksums the store refuses when they
//! are wrong, and which one `--checksum auto` would ask browsers for.
//!
//! For each of md5, crc32, crc32c and sha256 the store's [`Store::probe_checksum`] sends a part
//! with a deliberately wrong checksum (in an upload under a reserved key, aborted afterwards):
//! a store that refuses it verifies that checksum; one that stores it does not (Ceph 16 with
//! `x-amz-checksum-*`, docs/stores.md "Integrity"). The verdict is a pure function of those
//! answers ([`judge_checksums`]), as doctor's other checks are.

use s3_direct_protocol::wire::ChecksumAlgorithm;

use super::report::Status;
use crate::store::integrity::{self, Decision, Verification, auto_choice, judge_probe};
use crate::store::{ChecksumSetting, Store};

/// The check's name in doctor's report.
pub const CHECKSUMS: &str = "checksums";

/// Every algorithm doctor tries, in the order it reports them.
pub const ALGORITHMS: [ChecksumAlgorithm; 4] = [
    ChecksumAlgorithm::Md5,
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Sha256,
];

/// What a probe of one algorithm found: a verdict, or why the probe could not run.
pub type Probed = (ChecksumAlgorithm, Result<Verification, NotProbed>);

/// Why a probe could not run: the store's failure with its cause, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotProbed(pub String);

/// Probes every algorithm of [`ALGORITHMS`] on `store`, one after the other.
pub async fn probe_all(store: &dyn Store) -> Vec<Probed> {
    let mut found = Vec::with_capacity(ALGORITHMS.len());
    for algorithm in ALGORITHMS {
        let answer = store
            .probe_checksum(&integrity::probe_key(), algorithm)
            .await;
        found.push((
            algorithm,
            answer.map(|a| judge_probe(&a)).map_err(|e| {
                NotProbed(
                    std::error::Error::source(&e)
                        .map_or_else(|| e.to_string(), |s| format!("{e}: {s}")),
                )
            }),
        ));
    }
    found
}

/// What `auto` asks for on this store: what the store is known to verify (`known`, the embedded
/// store), else the rule over the CRC32C probe, as the server decides it at start.
pub fn judge_auto(found: &[Probed], known: Option<ChecksumAlgorithm>) -> Decision {
    if let Some(a) = known {
        return Decision {
            algorithm: Some(a),
            reason: format!("the store is known to verify {a}"),
            settled: true,
        };
    }
    let crc32c = found
        .iter()
        .find(|(a, _)| *a == ChecksumAlgorithm::Crc32c)
        .map_or(Err("not probed"), |(_, v)| {
            v.as_ref().map_err(|NotProbed(why)| why.as_str())
        });
    auto_choice(crc32c)
}

/// The algorithm browsers are asked for with `setting` on this store.
pub fn asked(setting: ChecksumSetting, auto: &Decision) -> Option<ChecksumAlgorithm> {
    match setting {
        ChecksumSetting::Auto => auto.algorithm,
        ChecksumSetting::Off => None,
        ChecksumSetting::Use(a) => Some(a),
    }
}

/// The verdict: which checksums the store refuses when wrong, which it stores anyway, which
/// could not be told, and what `auto` chooses. `ok` when the checksum browsers will be asked
/// for is one the store verifies; a warning when it is not (or none is asked for), naming the
/// setting that would protect uploads.
pub fn judge_checksums(
    found: &[Probed],
    setting: ChecksumSetting,
    auto: &Decision,
) -> (Status, String) {
    let list = |pick: &dyn Fn(&Result<Verification, NotProbed>) -> Option<String>| {
        let names: Vec<String> = found
            .iter()
            .filter_map(|(a, v)| pick(v).map(|detail| format!("{a}{detail}")))
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let refused = list(&|v| match v {
        Ok(Verification::Refuses(code)) => Some(format!(" ({code})")),
        _ => None,
    });
    let stored = list(&|v| matches!(v, Ok(Verification::Stores)).then(String::new));
    let unknown = list(&|v| match v {
        Ok(Verification::Unknown(answer)) => Some(format!(" ({answer})")),
        Err(why) => Some(format!(" (not probed: {why})")),
        _ => None,
    });
    let auto_name = integrity::name(auto.algorithm);
    let mut message = format!(
        "a part with a wrong checksum is refused for: {refused}; stored anyway for: {stored}"
    );
    if unknown != "none" {
        message.push_str(&format!("; unknown for: {unknown}"));
    }
    message.push_str(&format!(
        "; --checksum auto asks for {auto_name} ({})",
        auto.reason
    ));
    let verifies = |a: ChecksumAlgorithm| {
        found
            .iter()
            .any(|(b, v)| *b == a && matches!(v, Ok(Verification::Refuses(_))))
    };
    match (setting, asked(setting, auto)) {
        (_, Some(a)) if verifies(a) => (Status::Ok, message),
        (ChecksumSetting::Off, _) => (
            Status::Warn,
            format!(
                "{message}; but --checksum off asks for none, so a part damaged on the way is \
                 stored: drop --checksum off to use {auto_name}"
            ),
        ),
        (_, Some(a)) => (
            Status::Warn,
            format!(
                "{message}; but browsers are asked for {a}, which this store was not seen to \
                 verify: use --checksum auto"
            ),
        ),
        (_, None) => (
            Status::Warn,
            format!("{message}; no checksum this store verifies was found"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(crc: Verification) -> Vec<Probed> {
        ALGORITHMS
            .iter()
            .map(|a| {
                let v = if *a == ChecksumAlgorithm::Md5 {
                    Verification::Refuses("BadDigest".into())
                } else {
                    crc.clone()
                };
                (*a, Ok(v))
            })
            .collect()
    }

    #[test]
    fn auto_takes_crc32c_where_it_is_refused_when_wrong() {
        let all = found(Verification::Refuses("BadDigest".into()));
        let auto = judge_auto(&all, None);
        assert_eq!(auto.algorithm, Some(ChecksumAlgorithm::Crc32c));
        let (status, message) = judge_checksums(&all, ChecksumSetting::Auto, &auto);
        assert_eq!(status, Status::Ok, "{message}");
        assert!(
            message.starts_with(
                "a part with a wrong checksum is refused for: md5 (BadDigest), crc32 \
                 (BadDigest), crc32c (BadDigest), sha256 (BadDigest); stored anyway for: none"
            ),
            "{message}"
        );
        assert!(
            message.contains("--checksum auto asks for crc32c"),
            "{message}"
        );
    }

    #[test]
    fn a_store_that_ignores_crc_checksums_gets_md5_and_a_warning_for_crc32c() {
        // Ceph 16: Content-MD5 verified, x-amz-checksum-* ignored.
        let ceph = found(Verification::Stores);
        let auto = judge_auto(&ceph, None);
        assert_eq!(auto.algorithm, Some(ChecksumAlgorithm::Md5));
        let (status, message) = judge_checksums(&ceph, ChecksumSetting::Auto, &auto);
        assert_eq!(status, Status::Ok, "{message}");
        assert!(
            message.contains("stored anyway for: crc32, crc32c, sha256"),
            "{message}"
        );
        let fixed = ChecksumSetting::Use(ChecksumAlgorithm::Crc32c);
        let (status, message) = judge_checksums(&ceph, fixed, &auto);
        assert_eq!(status, Status::Warn);
        assert!(message.ends_with("use --checksum auto"), "{message}");
        let (status, message) = judge_checksums(&ceph, ChecksumSetting::Off, &auto);
        assert_eq!(status, Status::Warn);
        assert!(
            message.contains("drop --checksum off to use md5"),
            "{message}"
        );
    }

    #[test]
    fn probes_that_could_not_run_are_named_and_auto_falls_back_to_md5() {
        let down: Vec<Probed> = ALGORITHMS
            .iter()
            .map(|a| (*a, Err(NotProbed("connection refused".to_owned()))))
            .collect();
        let auto = judge_auto(&down, None);
        assert_eq!(auto.algorithm, Some(ChecksumAlgorithm::Md5));
        assert!(!auto.settled);
        let (status, message) = judge_checksums(&down, ChecksumSetting::Auto, &auto);
        assert_eq!(status, Status::Warn);
        assert!(
            message.contains("unknown for: md5 (not probed: connection refused)"),
            "{message}"
        );
        // The embedded store needs no probe for auto's choice.
        let known = judge_auto(&down, Some(ChecksumAlgorithm::Crc32c));
        assert_eq!(known.algorithm, Some(ChecksumAlgorithm::Crc32c));
    }
}
