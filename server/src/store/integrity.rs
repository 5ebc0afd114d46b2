//! Which part checksum the server asks clients for, and how it finds out what a store verifies.
//!
//! `--checksum auto` (the default) asks for a checksum the store actually verifies, so that a
//! byte flipped on the way to the store is refused there, not stored. Stores differ
//! (docs/stores.md, "Integrity"): every one verifies `Content-MD5`; S3, Garage and the embedded
//! store also verify `x-amz-checksum-crc32c`, which is cheaper to compute and combines into a
//! whole-file CRC32C; Ceph 16 ignores it and stores a damaged part. So `auto` prefers CRC32C
//! where the store refuses a part with a wrong one, and falls back to MD5 everywhere else.
//!
//! What a store verifies is learnt by a probe ([`Store::probe_checksum`]): a multipart upload
//! under a reserved key outside any key prefix ([`PROBE_PREFIX`]), one small part sent with a
//! deliberately wrong checksum, the upload aborted whatever happened. The embedded store needs
//! no probe ([`Store::verified_checksum`]). A probe that cannot run (the store is down) leaves
//! MD5 in force, never "no checksum", and is tried again at a create at most once per
//! [`DEFAULT_RETRY_EVERY`]: MD5 is verified everywhere, so until then nothing is lost but speed.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3_direct_protocol::wire::ChecksumAlgorithm;

use super::{NewUpload, PartSigning, Store, StoreError};

/// Keys of probe uploads start with this: outside any `--key-prefix` (a prefix that is not empty
/// ends with `/` and names the application's folder), so the probe never touches an
/// application's keys.
pub const PROBE_PREFIX: &str = ".s3-direct/checksum-probe/";

/// How long a failed probe is trusted before a create tries again.
pub const DEFAULT_RETRY_EVERY: Duration = Duration::from_secs(60);

/// How long a probe may take before the server gives up on it (start-up waits at most this).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The body of a probe part.
const PROBE_BODY: &[u8] = b"s3-direct checksum probe: this part carries a wrong checksum\n";

/// `--checksum`: what the server asks clients to sign every part with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumSetting {
    /// A checksum the store verifies: CRC32C where it refuses a wrong one, else MD5.
    #[default]
    Auto,
    /// No part checksums (today's choice for those who measured and decided).
    Off,
    /// This algorithm, whatever the store does with it.
    Use(ChecksumAlgorithm),
}

impl ChecksumSetting {
    /// Parses `auto`, `off` or an algorithm name (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "off" => Some(Self::Off),
            other => ChecksumAlgorithm::parse(other).map(Self::Use),
        }
    }
}

/// What a store answered the PUT of a part whose checksum is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartProbe {
    /// The PUT's HTTP status.
    pub status: u16,
    /// The S3 error code of its body, if it had one.
    pub code: Option<String>,
}

/// Whether a store verifies a checksum, judged from a [`PartProbe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The damaged part was refused (`BadDigest` or its kin): the store verifies it.
    Refuses(String),
    /// The damaged part was stored: the store does not verify it.
    Stores,
    /// Another answer (status and code): whether it verifies is unknown.
    Unknown(String),
}

/// Judges a probe's answer. Stores name a wrong checksum `BadDigest` (S3, Ceph for MD5, the
/// embedded store), `InvalidDigest` or `XAmzContentChecksumMismatch` (Garage).
pub fn judge_probe(probe: &PartProbe) -> Verification {
    let code = probe.code.as_deref().unwrap_or("");
    if probe.status == 400
        && matches!(
            code,
            "BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch"
        )
    {
        return Verification::Refuses(code.to_owned());
    }
    if (200..300).contains(&probe.status) {
        return Verification::Stores;
    }
    let code = if code.is_empty() {
        "no S3 error code"
    } else {
        code
    };
    Verification::Unknown(format!("status {} ({code})", probe.status))
}

/// What the server asks for, and why (for the start-up log line and `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The algorithm clients are asked for; `None`: none.
    pub algorithm: Option<ChecksumAlgorithm>,
    /// One line saying why.
    pub reason: String,
    /// Final until the process ends; otherwise a later create probes again.
    pub settled: bool,
}

/// `auto`'s rule over what the store did with a part whose CRC32C was wrong (`Err`: the probe
/// could not run).
pub fn auto_choice(crc32c: Result<&Verification, &str>) -> Decision {
    let md5 = Some(ChecksumAlgorithm::Md5);
    match crc32c {
        Ok(Verification::Refuses(code)) => Decision {
            algorithm: Some(ChecksumAlgorithm::Crc32c),
            reason: format!("the store refused a part with a wrong crc32c checksum ({code})"),
            settled: true,
        },
        Ok(Verification::Stores) => Decision {
            algorithm: md5,
            reason: "the store stored a part with a wrong crc32c checksum (it does not verify \
                     x-amz-checksum-crc32c); every store verifies Content-MD5"
                .to_owned(),
            settled: true,
        },
        Ok(Verification::Unknown(answer)) => Decision {
            algorithm: md5,
            reason: format!(
                "the store answered a part with a wrong crc32c checksum with {answer}; md5 \
                 until a later probe tells"
            ),
            settled: false,
        },
        Err(why) => Decision {
            algorithm: md5,
            reason: format!("the crc32c probe could not run ({why}); md5 until a later probe"),
            settled: false,
        },
    }
}

/// Base64 of `body`'s digest, as the client signs it.
pub(crate) fn checksum_of(c: ChecksumAlgorithm, body: &[u8]) -> String {
    use base64::Engine as _;
    use s3s::crypto::{Checksum as _, Crc32, Crc32c, Md5, Sha256};
    let digest: Vec<u8> = match c {
        ChecksumAlgorithm::Md5 => Md5::checksum(body).to_vec(),
        ChecksumAlgorithm::Crc32 => Crc32::checksum(body).to_vec(),
        ChecksumAlgorithm::Crc32c => Crc32c::checksum(body).to_vec(),
        ChecksumAlgorithm::Sha256 => Sha256::checksum(body).as_ref().to_vec(),
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A fresh probe key.
pub fn probe_key() -> String {
    format!("{PROBE_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// A probe part: its body, and the wrong `algorithm` checksum it is sent with (the checksum of
/// another body: well-formed, and wrong for this one).
pub fn wrong_part(algorithm: ChecksumAlgorithm) -> (&'static [u8], String) {
    let mut other = PROBE_BODY.to_vec();
    other[0] ^= 1;
    (PROBE_BODY, checksum_of(algorithm, &other))
}

/// The probe's frame: a multipart upload under `key` (created for `algorithm` unless it is MD5,
/// which needs no declaring), `send_part(upload_id)` sending part 1 with a wrong checksum, and
/// the upload aborted in every case.
pub async fn probe_with<S, F, Fut>(
    store: &S,
    key: &str,
    algorithm: ChecksumAlgorithm,
    send_part: F,
) -> Result<PartProbe, StoreError>
where
    S: Store + ?Sized,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<PartProbe, StoreError>>,
{
    let upload_id = store
        .create_multipart(NewUpload {
            key: key.to_owned(),
            content_type: "application/octet-stream".to_owned(),
            metadata: Default::default(),
            checksum: Some(algorithm).filter(|a| *a != ChecksumAlgorithm::Md5),
        })
        .await?;
    let answer = send_part(upload_id.clone()).await;
    // Leave nothing behind, whatever happened; a failed abort leaves an upload a lifecycle rule
    // removes, and does not change what the store verifies.
    if let Err(e) = store.abort(key, &upload_id).await {
        tracing::warn!(%key, upload = %upload_id, error = %e, "aborting a checksum probe failed");
    }
    answer
}

/// The probe as a browser would meet it, over any store that presigns real URLs: part 1
/// presigned with a wrong checksum and PUT over HTTP ([`probe_with`]).
pub async fn probe_by_put<S: Store + ?Sized>(
    store: &S,
    key: &str,
    algorithm: ChecksumAlgorithm,
) -> Result<PartProbe, StoreError> {
    probe_with(store, key, algorithm, |upload_id| async move {
        put_wrong_part(store, key, &upload_id, algorithm).await
    })
    .await
}

async fn put_wrong_part<S: Store + ?Sized>(
    store: &S,
    key: &str,
    upload_id: &str,
    algorithm: ChecksumAlgorithm,
) -> Result<PartProbe, StoreError> {
    const OP: &str = "UploadPart (checksum probe)";
    let (body, wrong) = wrong_part(algorithm);
    let signing = PartSigning {
        content_length: Some(body.len() as u64),
        checksum: Some((algorithm, wrong)),
    };
    let presigned = store
        .presign_part(key, upload_id, 1, Duration::from_secs(300), &signing)
        .await?;
    let http = crate::http_client()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| StoreError::unavailable(OP, e))?;
    let mut put = http.put(&presigned.url).body(body);
    for (name, value) in &presigned.headers {
        if !matches!(name.as_str(), "host" | "content-length") {
            put = put.header(name, value);
        }
    }
    let answer = put
        .send()
        .await
        .map_err(|e| StoreError::unavailable(OP, e))?;
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap_or_default();
    Ok(PartProbe {
        status,
        code: s3_error_code(&body).map(str::to_owned),
    })
}

/// The `<Code>` of an S3 XML error body.
pub(crate) fn s3_error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(&body[start..end])
}

/// The server's running choice: fixed by `--checksum`, or `auto`'s, probed at start and again
/// (lazily, at most once per `retry_every`) while no probe has settled it.
#[derive(Debug)]
pub struct ChecksumChoice {
    setting: ChecksumSetting,
    retry_every: Duration,
    state: Mutex<Chosen>,
}

#[derive(Debug)]
struct Chosen {
    decision: Option<Decision>,
    /// When the last probe started; a create probes again once `retry_every` has passed.
    last_probe: Option<Instant>,
}

impl ChecksumChoice {
    /// The choice `setting` asks for; an `auto` one is probed at its first use.
    pub fn new(setting: ChecksumSetting, retry_every: Duration) -> Self {
        let decision = match setting {
            ChecksumSetting::Auto => None,
            ChecksumSetting::Off => Some(Decision {
                algorithm: None,
                reason: "--checksum off: parts carry no checksum, and a part damaged on the way \
                         is stored as it arrives"
                    .to_owned(),
                settled: true,
            }),
            ChecksumSetting::Use(a) => Some(Decision {
                algorithm: Some(a),
                reason: format!("--checksum {a}"),
                settled: true,
            }),
        };
        Self {
            setting,
            retry_every,
            state: Mutex::new(Chosen {
                decision,
                last_probe: None,
            }),
        }
    }

    /// The setting this choice follows.
    pub fn setting(&self) -> ChecksumSetting {
        self.setting
    }

    /// The decision so far (`None`: `auto`, not probed yet).
    pub fn current(&self) -> Option<Decision> {
        self.lock().decision.clone()
    }

    /// Decides now: probes `store` unless the decision is settled. Start-up calls it and logs
    /// the result.
    pub async fn decide(self: &Arc<Self>, store: &Arc<dyn Store>) -> Decision {
        {
            let mut state = self.lock();
            if let Some(d) = state.decision.as_ref().filter(|d| d.settled) {
                return d.clone();
            }
            state.last_probe = Some(Instant::now());
        }
        self.probe(store).await
    }

    /// The algorithm to ask clients for now. An `auto` choice that no probe has settled probes
    /// again when `retry_every` has passed since the last try (one caller at a time; the others
    /// go on with the current answer, MD5).
    pub async fn asked(self: &Arc<Self>, store: &Arc<dyn Store>) -> Option<ChecksumAlgorithm> {
        {
            let mut state = self.lock();
            let due = match &state.decision {
                Some(d) if d.settled => return d.algorithm,
                _ => state
                    .last_probe
                    .is_none_or(|at| at.elapsed() >= self.retry_every),
            };
            if !due {
                return state
                    .decision
                    .as_ref()
                    .map_or(Some(ChecksumAlgorithm::Md5), |d| d.algorithm);
            }
            state.last_probe = Some(Instant::now());
        }
        let decision = self.probe(store).await;
        if decision.settled {
            tracing::info!(
                "part checksum {}: {}",
                name(decision.algorithm),
                decision.reason
            );
        }
        decision.algorithm
    }

    /// Probes `store` (or takes what it is known to verify) and keeps the decision. The probe
    /// runs in its own task, waited for at most [`PROBE_TIMEOUT`]: a store that hangs delays
    /// nobody longer, and the probe still aborts its upload and records its finding when it ends.
    async fn probe(self: &Arc<Self>, store: &Arc<dyn Store>) -> Decision {
        if let Some(a) = store.verified_checksum() {
            return self.keep(Decision {
                algorithm: Some(a),
                reason: format!("the store is known to verify {a} (no probe needed)"),
                settled: true,
            });
        }
        let (this, store) = (self.clone(), store.clone());
        let task = tokio::spawn(async move {
            let key = probe_key();
            let decision = match store.probe_checksum(&key, ChecksumAlgorithm::Crc32c).await {
                Ok(answer) => auto_choice(Ok(&judge_probe(&answer))),
                Err(e) => auto_choice(Err(&error_chain(&e))),
            };
            this.keep(decision)
        });
        match tokio::time::timeout(PROBE_TIMEOUT, task).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(e)) => self.keep(auto_choice(Err(&format!("the probe failed: {e}")))),
            Err(_) => {
                let late = auto_choice(Err(&format!(
                    "no answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                )));
                let mut state = self.lock();
                // The task may have decided in the meantime; a late answer is kept as well.
                state.decision.get_or_insert(late).clone()
            }
        }
    }

    /// Records `decision` and returns it.
    fn keep(&self, decision: Decision) -> Decision {
        self.lock().decision = Some(decision.clone());
        decision
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Chosen> {
        // A panic while holding it leaves a consistent value: each write is one assignment.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An algorithm's name, or `off`.
pub fn name(algorithm: Option<ChecksumAlgorithm>) -> &'static str {
    algorithm.map_or("off", ChecksumAlgorithm::as_str)
}

/// An error and its causes on one line, cut to [`MAX_REASON`] characters (the SDK's causes
/// carry whole debug dumps; the log line and `/readyz` need the gist).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    match out.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

/// Longest error text kept in a decision's reason.
const MAX_REASON: usize = 160;

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(status: u16, code: Option<&str>) -> PartProbe {
        PartProbe {
            status,
            code: code.map(str::to_owned),
        }
    }

    #[test]
    fn a_refused_damaged_part_means_the_store_verifies() {
        for code in ["BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"] {
            assert_eq!(
                judge_probe(&probe(400, Some(code))),
                Verification::Refuses(code.to_owned())
            );
        }
        assert_eq!(judge_probe(&probe(200, None)), Verification::Stores);
        assert_eq!(
            judge_probe(&probe(403, Some("AccessDenied"))),
            Verification::Unknown("status 403 (AccessDenied)".to_owned())
        );
        assert!(matches!(
            judge_probe(&probe(400, None)),
            Verification::Unknown(_)
        ));
    }

    #[test]
    fn auto_prefers_crc32c_and_falls_back_to_md5() {
        let verifies = auto_choice(Ok(&Verification::Refuses("BadDigest".into())));
        assert_eq!(verifies.algorithm, Some(ChecksumAlgorithm::Crc32c));
        assert!(verifies.settled);
        let ignores = auto_choice(Ok(&Verification::Stores));
        assert_eq!(ignores.algorithm, Some(ChecksumAlgorithm::Md5));
        assert!(ignores.settled && ignores.reason.contains("does not verify"));
        for unsure in [
            auto_choice(Ok(&Verification::Unknown("status 403".into()))),
            auto_choice(Err("connection refused")),
        ] {
            assert_eq!(unsure.algorithm, Some(ChecksumAlgorithm::Md5));
            assert!(!unsure.settled, "{unsure:?}");
        }
    }

    #[test]
    fn the_setting_parses_auto_off_and_algorithms() {
        assert_eq!(ChecksumSetting::parse("AUTO"), Some(ChecksumSetting::Auto));
        assert_eq!(ChecksumSetting::parse("off"), Some(ChecksumSetting::Off));
        assert_eq!(
            ChecksumSetting::parse("crc32c"),
            Some(ChecksumSetting::Use(ChecksumAlgorithm::Crc32c))
        );
        assert_eq!(ChecksumSetting::parse("crc64"), None);
        assert!(probe_key().starts_with(PROBE_PREFIX));
    }
}
