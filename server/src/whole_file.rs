//! The CRC of a whole object, whatever its part size, combined from the parts' CRCs.
//!
//! A multipart object's checksum as stores report it is composite: the checksum of the parts'
//! checksums, `ALGO:BASE64-N`, which changes with the part size, so an application that knows
//! its file's checksum cannot compare it. A CRC is different: the CRC of `A‖B` follows from
//! `crc(A)`, `crc(B)` and the length of `B` alone (zlib's `crc32_combine`). So the server turns
//! the CRC32C (or CRC32) of each part, which the store verified at the part's PUT and again at
//! completion, and each part's length, from the store's listing or the upload's fixed plan, into
//! the CRC of the whole object, without reading a byte of it back ([`of_parts`]).
//!
//! The part CRCs are the ones the completion named. They count only when the store vouches for
//! them: its composite checksum must be the one those values give. A store that ignores CRC
//! headers (Ceph 16, docs/stores.md "Integrity") reports no composite, and gets no whole-file CRC.
//! MD5 and SHA-256 parts cannot be combined: no whole-file value then either.
//!
//! A file sent as one PUT with `x-amz-checksum-crc32c` (or `-crc32`), which the store verified,
//! already carries the whole-file value, and HeadObject reports it: [`of_single_put`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, WholeFileChecksum};

/// The CRC of the concatenation of pieces given as `(crc, length)`, in order; `None` for no
/// pieces, or for an algorithm that is not a CRC.
pub fn combine(algorithm: ChecksumAlgorithm, pieces: &[(u32, u64)]) -> Option<u32> {
    let (&(first, _), rest) = pieces.split_first()?;
    match algorithm {
        ChecksumAlgorithm::Crc32c => rest.iter().try_fold(first, |crc, &(next, len)| {
            Some(crc32c::crc32c_combine(
                crc,
                next,
                usize::try_from(len).ok()?,
            ))
        }),
        ChecksumAlgorithm::Crc32 => {
            let mut all = crc32fast::Hasher::new_with_initial_len(first, 0);
            for &(next, len) in rest {
                all.combine(&crc32fast::Hasher::new_with_initial_len(next, len));
            }
            Some(all.finalize())
        }
        ChecksumAlgorithm::Md5 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// The whole object's CRC of `algorithm` (the upload's part checksum algorithm), from the
/// `parts` a completion named with their checksums, `length` of each part number, and the
/// store's `composite` checksum of the object (`ALGO:BASE64-N`). Empty unless the algorithm is a
/// CRC, every part has its CRC and length, and the composite is the one the named CRCs give.
pub fn of_parts(
    algorithm: Option<ChecksumAlgorithm>,
    parts: &[CompletedPart],
    length: impl Fn(u32) -> Option<u64>,
    composite: Option<&str>,
) -> WholeFileChecksum {
    let Some(algorithm) = algorithm.filter(|a| is_crc(*a)) else {
        return WholeFileChecksum::default();
    };
    let pieces: Option<Vec<(u32, u64)>> = parts
        .iter()
        .map(|p| {
            let crc = decode_crc(p.checksums.get(algorithm)?)?;
            Some((crc, length(p.part_number)?))
        })
        .collect();
    let Some(pieces) = pieces else {
        return WholeFileChecksum::default();
    };
    if composite != Some(composite_of(algorithm, &pieces).as_str()) {
        return WholeFileChecksum::default();
    }
    with(algorithm, combine(algorithm, &pieces))
}

/// The whole-file CRC of a file sent as one PUT, from the checksum the store reports for the object
/// (`ObjectHead::checksum`, `ALGO:BASE64`): the embedded store and Garage report the verified
/// `x-amz-checksum-crc32c` of the PUT; Ceph 16 reports none (it did not verify it). Pass the
/// store's value, never the one the client named. Empty unless it is a single CRC.
pub fn of_single_put(checksum: Option<&str>) -> WholeFileChecksum {
    let parsed = checksum.and_then(|c| {
        let (name, value) = c.split_once(':')?;
        let algorithm = ChecksumAlgorithm::parse(name).filter(|a| is_crc(*a))?;
        Some((algorithm, decode_crc(value)?))
    });
    match parsed {
        Some((algorithm, crc)) => with(algorithm, Some(crc)),
        None => WholeFileChecksum::default(),
    }
}

fn is_crc(algorithm: ChecksumAlgorithm) -> bool {
    matches!(
        algorithm,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c
    )
}

fn with(algorithm: ChecksumAlgorithm, crc: Option<u32>) -> WholeFileChecksum {
    let value = crc.map(|c| STANDARD.encode(c.to_be_bytes()));
    match algorithm {
        ChecksumAlgorithm::Crc32c => WholeFileChecksum {
            crc32c: value,
            crc32: None,
        },
        ChecksumAlgorithm::Crc32 => WholeFileChecksum {
            crc32c: None,
            crc32: value,
        },
        ChecksumAlgorithm::Md5 | ChecksumAlgorithm::Sha256 => WholeFileChecksum::default(),
    }
}

/// A CRC in S3's form: base64 of its 4 big-endian bytes.
fn decode_crc(value: &str) -> Option<u32> {
    let bytes: [u8; 4] = STANDARD.decode(value).ok()?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// The composite checksum stores report for parts with these CRCs: the CRC of the parts' CRC
/// bytes, `-N`, as `algo:BASE64-N`.
fn composite_of(algorithm: ChecksumAlgorithm, pieces: &[(u32, u64)]) -> String {
    let bytes: Vec<u8> = pieces.iter().flat_map(|(c, _)| c.to_be_bytes()).collect();
    let crc = match algorithm {
        ChecksumAlgorithm::Crc32c => crc32c::crc32c(&bytes),
        _ => crc32fast::hash(&bytes),
    };
    format!(
        "{algorithm}:{}-{}",
        STANDARD.encode(crc.to_be_bytes()),
        pieces.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that are not all alike.
    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn crc(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> u32 {
        match algorithm {
            ChecksumAlgorithm::Crc32c => crc32c::crc32c(bytes),
            _ => crc32fast::hash(bytes),
        }
    }

    /// The file cut at `part` bytes (the last part short), as a completion names it, with the
    /// parts' lengths and the composite checksum a store reports.
    fn cut(
        algorithm: ChecksumAlgorithm,
        file: &[u8],
        part: usize,
    ) -> (Vec<CompletedPart>, Vec<u64>, String) {
        let mut parts = Vec::new();
        let mut lengths = Vec::new();
        let mut crcs = Vec::new();
        for (i, chunk) in file.chunks(part).enumerate() {
            let mut p = CompletedPart {
                part_number: u32::try_from(i + 1).unwrap(),
                etag: format!("\"e{i}\""),
                ..CompletedPart::default()
            };
            let c = crc(algorithm, chunk);
            p.checksums.set(algorithm, STANDARD.encode(c.to_be_bytes()));
            parts.push(p);
            lengths.push(chunk.len() as u64);
            crcs.extend(c.to_be_bytes());
        }
        let composite = format!(
            "{algorithm}:{}-{}",
            STANDARD.encode(crc(algorithm, &crcs).to_be_bytes()),
            parts.len()
        );
        (parts, lengths, composite)
    }

    /// The combined value is the CRC of the whole file, for any part size: several full parts
    /// and a short last one, one part, parts of one byte, a part size that divides the file.
    #[test]
    fn combined_part_crcs_are_the_crc_of_the_whole_file() {
        let file = data(100_003);
        let cases: [(usize, usize); 8] = [
            (50, 1),
            (100_003, 7),
            (100_003, 4096),
            (100_000, 10_000),
            (100_003, 33_334),
            (100_003, 65_536),
            (100_003, 100_003),
            (100_003, 200_000),
        ];
        for algorithm in [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc32] {
            for (len, part) in cases {
                let file = &file[..len];
                let whole = STANDARD.encode(crc(algorithm, file).to_be_bytes());
                let (parts, lengths, composite) = cut(algorithm, file, part);
                let got = of_parts(
                    Some(algorithm),
                    &parts,
                    |n| lengths.get(n as usize - 1).copied(),
                    Some(&composite),
                );
                let value = match algorithm {
                    ChecksumAlgorithm::Crc32c => (got.crc32c, got.crc32),
                    _ => (got.crc32, got.crc32c),
                };
                assert_eq!(
                    value,
                    (Some(whole), None),
                    "{algorithm}, {len} in parts of {part}"
                );
            }
        }
    }

    /// No whole-file value without the store's word for the part CRCs, with a part's CRC or
    /// length missing, or for checksums that cannot be combined.
    #[test]
    fn nothing_is_claimed_that_the_store_did_not_vouch_for() {
        let file = data(30_000);
        let crc32c = Some(ChecksumAlgorithm::Crc32c);
        let (parts, lengths, composite) = cut(ChecksumAlgorithm::Crc32c, &file, 10_000);
        let length = |n: u32| lengths.get(n as usize - 1).copied();
        assert!(
            of_parts(crc32c, &parts, length, Some(&composite))
                .crc32c
                .is_some()
        );
        let none = WholeFileChecksum::default();
        // Ceph 16 reports no composite: it did not check the CRCs.
        assert_eq!(of_parts(crc32c, &parts, length, None), none);
        // A composite of other part CRCs (a part named with a CRC the store does not hold).
        let mut forged = parts.clone();
        forged[1].checksums.set(
            ChecksumAlgorithm::Crc32c,
            STANDARD.encode(7u32.to_be_bytes()),
        );
        assert_eq!(of_parts(crc32c, &forged, length, Some(&composite)), none);
        // A part whose length is unknown.
        assert_eq!(
            of_parts(
                crc32c,
                &parts,
                |n| (n != 2).then_some(10_000),
                Some(&composite)
            ),
            none
        );
        // MD5 and SHA-256 parts, and no part checksums at all.
        for algorithm in [
            Some(ChecksumAlgorithm::Md5),
            Some(ChecksumAlgorithm::Sha256),
            None,
        ] {
            assert_eq!(of_parts(algorithm, &parts, length, Some(&composite)), none);
        }
    }

    #[test]
    fn a_single_put_crc_is_the_whole_file_value() {
        let file = data(1234);
        let value = STANDARD.encode(crc32c::crc32c(&file).to_be_bytes());
        let got = of_single_put(Some(&format!("crc32c:{value}")));
        assert_eq!(got.crc32c.as_deref(), Some(value.as_str()));
        assert_eq!(got.crc32, None);
        let value = STANDARD.encode(crc32fast::hash(&file).to_be_bytes());
        assert_eq!(
            of_single_put(Some(&format!("CRC32:{value}"))).crc32,
            Some(value)
        );
        let none = WholeFileChecksum::default();
        assert_eq!(of_single_put(Some("sha256:AAAA")), none);
        assert_eq!(of_single_put(Some("crc32c:not base64")), none);
        assert_eq!(of_single_put(None), none);
    }
}
