//! The part checksums stores verify: MD5 (`Content-MD5`), CRC32C, CRC32 and SHA-256
//! (`x-amz-checksum-*`), base64 as S3 spells them, and the text forms the engine passes around:
//! `ALGO:BASE64` for a part's or a file's checksum, `ALGO:BASE64-N` for S3's composite checksum of
//! an upload's N parts.
//!
//! The hashers are a thin layer over the RustCrypto (`md-5`, `sha2`), `crc32c` and `crc32fast`
//! crates, so the engine speaks in S3's algorithms and encodings; in the browser's Web Worker a
//! [`Digest`] is fed each part a chunk at a time (`ChecksumStream` in `worker.rs`, the worker's own
//! module). They come with the `hashing` feature, which the page's module is built without; the
//! text forms are always here (the page's engine builds them from what the worker answers). The
//! tests pin each algorithm to its standard's vectors and to the same sums for any chunk
//! boundaries.

#[cfg(feature = "hashing")]
use base64::Engine as _;
#[cfg(feature = "hashing")]
use base64::engine::general_purpose::STANDARD;
#[cfg(feature = "hashing")]
use md5::Digest as _;
use s3_direct_protocol::wire::ChecksumAlgorithm;

/// `ALGO:BASE64`: a part's (or a whole file's) checksum as the engine names it.
#[inline]
pub fn tagged(algorithm: ChecksumAlgorithm, base64: &str) -> String {
    format!("{algorithm}:{base64}")
}

/// The algorithm and base64 of an `ALGO:BASE64` checksum, when it names a known algorithm.
#[inline]
pub fn untag(sum: &str) -> Option<(ChecksumAlgorithm, &str)> {
    let (algorithm, base64) = sum.split_once(':')?;
    Some((ChecksumAlgorithm::parse(algorithm)?, base64))
}

/// What S3's composite checksum of an upload is computed from: the base64 of every part's
/// `algorithm` checksum (`ALGO:BASE64`, in part order); `None` when a part has none of it.
#[inline]
pub fn composite_inputs<'a>(
    algorithm: ChecksumAlgorithm,
    sums: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<Vec<String>> {
    let prefix = format!("{algorithm}:");
    // A loop rather than `collect` into an `Option`, whose adapters are a copy of their own.
    let mut inputs = Vec::new();
    for sum in sums {
        inputs.push(sum?.strip_prefix(&prefix)?.to_owned());
    }
    Some(inputs)
}

/// `ALGO:BASE64-N`: S3's composite checksum (`base64`, see [`composite`] where hashing is built)
/// of an upload of `parts` parts.
#[inline]
pub fn composite_tagged(algorithm: ChecksumAlgorithm, base64: &str, parts: usize) -> String {
    format!("{algorithm}:{base64}-{parts}")
}

#[cfg(feature = "hashing")]
/// A running checksum of one algorithm.
#[derive(Clone)]
pub enum Digest {
    Md5(md5::Md5),
    Crc32c(u32),
    Crc32(crc32fast::Hasher),
    Sha256(sha2::Sha256),
}

#[cfg(feature = "hashing")]
impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Md5(_) => "md5",
            Self::Crc32c(_) => "crc32c",
            Self::Crc32(_) => "crc32",
            Self::Sha256(_) => "sha256",
        };
        f.debug_tuple("Digest").field(&name).finish()
    }
}

#[cfg(feature = "hashing")]
impl Digest {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(0),
            ChecksumAlgorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Self::Crc32(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The digest's bytes (CRCs big-endian, as S3 encodes them).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(h) => h.finalize().to_vec(),
            Self::Crc32c(c) => c.to_be_bytes().to_vec(),
            Self::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(feature = "hashing")]
/// The base64 checksum of `data`, as S3's headers carry it.
pub fn checksum(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut d = Digest::new(algorithm);
    d.update(data);
    base64(&d.finish())
}

#[cfg(feature = "hashing")]
/// S3's composite checksum: the `algorithm` checksum of the parts' checksums (`sums`, base64)
/// as raw bytes, as base64; `None` when one is not base64.
pub fn composite(algorithm: ChecksumAlgorithm, sums: &[String]) -> Option<String> {
    let mut digest = Digest::new(algorithm);
    for sum in sums {
        digest.update(&base64_decode(sum)?);
    }
    Some(base64(&digest.finish()))
}

#[cfg(feature = "hashing")]
/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

#[cfg(feature = "hashing")]
/// The bytes of standard base64 `text`, or `None` if it is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

#[cfg(all(test, feature = "hashing"))]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut d = Digest::new(algorithm);
        d.update(data);
        hex(&d.finish())
    }

    #[test]
    fn md5_matches_rfc_1321() {
        let md5 = |s: &str| digest(ChecksumAlgorithm::Md5, s.as_bytes());
        assert_eq!(md5(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5("abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn sha256_matches_fips_180() {
        let sha = |s: &[u8]| digest(ChecksumAlgorithm::Sha256, s);
        assert_eq!(
            sha(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn crcs_match_their_check_values() {
        assert_eq!(digest(ChecksumAlgorithm::Crc32c, b"123456789"), "e3069283");
        assert_eq!(digest(ChecksumAlgorithm::Crc32, b"123456789"), "cbf43926");
    }

    #[test]
    fn split_updates_equal_one_update() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algorithm in ChecksumAlgorithm::ALL {
            let whole = digest(algorithm, &data);
            // Odd sizes straddle the hashes' 64-byte blocks and the CRCs' word loops.
            for size in [1, 3, 63, 64, 65, 4097, 9_999] {
                let mut d = Digest::new(algorithm);
                for chunk in data.chunks(size) {
                    d.update(chunk);
                }
                assert_eq!(hex(&d.finish()), whole, "{algorithm} in chunks of {size}");
            }
            // Empty updates change nothing.
            let mut d = Digest::new(algorithm);
            d.update(&[]);
            d.update(&data);
            d.update(&[]);
            assert_eq!(hex(&d.finish()), whole, "{algorithm} with empty updates");
        }
    }

    #[test]
    fn text_forms_tag_and_untag() {
        let crc = ChecksumAlgorithm::Crc32c;
        assert_eq!(tagged(crc, "AAAAAA=="), "crc32c:AAAAAA==");
        assert_eq!(untag("crc32c:AAAAAA=="), Some((crc, "AAAAAA==")));
        assert_eq!(untag("crc99:AAAAAA=="), None);
        assert_eq!(untag("AAAAAA=="), None);
        let sums = [Some("crc32c:AAAAAA=="), Some("crc32c:AQIDBA==")];
        assert_eq!(
            composite_inputs(crc, sums),
            Some(vec!["AAAAAA==".to_owned(), "AQIDBA==".to_owned()])
        );
        assert_eq!(composite_inputs(crc, [Some("crc32c:A"), None]), None);
        assert_eq!(composite_inputs(crc, [Some("md5:A")]), None);
        assert_eq!(composite_tagged(crc, "Zm9v", 12), "crc32c:Zm9v-12");
    }

    #[test]
    fn base64_round_trips_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            checksum(ChecksumAlgorithm::Md5, b""),
            "1B2M2Y8AsgTpgAmY7PhCfg=="
        );
        for s in [&b""[..], b"f", b"fo", b"foo", b"\xff\x00\x10"] {
            assert_eq!(base64_decode(&base64(s)).unwrap(), s);
        }
        assert_eq!(base64_decode("a$"), None);
    }
}
