//! The embedded store's part checksums: the ones a part's sender declares (`Content-MD5` aside),
//! in headers or trailers, checked against what arrived ([`Digests`]), and the algorithm an upload
//! is created with, whose object then gets a composite checksum ([`Composite`]), kept in an
//! attribute of the upload's record.

use s3s::S3Result;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{
    self, ChecksumAlgorithm, CompletedPart, CreateMultipartUploadInput, UploadPartInput,
};
use s3s::s3_error;
use uuid::Uuid;

use super::layout::Layout;
use super::xattr::{ALGORITHM_ATTRIBUTE, read_attribute};

/// An algorithm an upload can be created with, whose object then gets a composite checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Composite {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
}

impl Composite {
    const ALL: [Self; 4] = [Self::Crc32, Self::Crc32c, Self::Sha1, Self::Sha256];

    /// The algorithm a create asks for, if any; one the store cannot hold to is refused.
    pub(super) fn declared(input: &CreateMultipartUploadInput) -> S3Result<Option<Self>> {
        if input
            .checksum_type
            .as_ref()
            .is_some_and(|t| t.as_str() != dto::ChecksumType::COMPOSITE)
        {
            return Err(s3_error!(
                NotImplemented,
                "The embedded store keeps composite checksums only"
            ));
        }
        let Some(name) = input
            .checksum_algorithm
            .as_ref()
            .map(ChecksumAlgorithm::as_str)
        else {
            return Ok(None);
        };
        Self::from_name(name).map(Some).ok_or_else(|| {
            s3_error!(
                NotImplemented,
                "The embedded store keeps composite checksums of CRC32, CRC32C, SHA1 and SHA256, \
                 not {name}"
            )
        })
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// S3's name (`x-amz-checksum-algorithm`).
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Crc32 => ChecksumAlgorithm::CRC32,
            Self::Crc32c => ChecksumAlgorithm::CRC32C,
            Self::Sha1 => ChecksumAlgorithm::SHA1,
            Self::Sha256 => ChecksumAlgorithm::SHA256,
        }
    }

    pub(super) fn hasher(self) -> ChecksumHasher {
        let mut hasher = ChecksumHasher::default();
        match self {
            Self::Crc32 => hasher.crc32 = Some(Default::default()),
            Self::Crc32c => hasher.crc32c = Some(Default::default()),
            Self::Sha1 => hasher.sha1 = Some(Default::default()),
            Self::Sha256 => hasher.sha256 = Some(Default::default()),
        }
        hasher
    }

    /// This algorithm's value in `checksum`.
    pub(super) fn pick(self, checksum: &dto::Checksum) -> Option<&String> {
        match self {
            Self::Crc32 => checksum.checksum_crc32.as_ref(),
            Self::Crc32c => checksum.checksum_crc32c.as_ref(),
            Self::Sha1 => checksum.checksum_sha1.as_ref(),
            Self::Sha256 => checksum.checksum_sha256.as_ref(),
        }
    }

    /// This algorithm's value a completion names for `part`.
    pub(super) fn named_in(self, part: &CompletedPart) -> Option<&str> {
        match self {
            Self::Crc32 => part.checksum_crc32.as_deref(),
            Self::Crc32c => part.checksum_crc32c.as_deref(),
            Self::Sha1 => part.checksum_sha1.as_deref(),
            Self::Sha256 => part.checksum_sha256.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }

    /// A composite checksum of this algorithm.
    pub(super) fn checksum(self, value: String) -> dto::Checksum {
        let mut checksum = dto::Checksum {
            checksum_type: Some(dto::ChecksumType::from_static(dto::ChecksumType::COMPOSITE)),
            ..Default::default()
        };
        match self {
            Self::Crc32 => checksum.checksum_crc32 = Some(value),
            Self::Crc32c => checksum.checksum_crc32c = Some(value),
            Self::Sha1 => checksum.checksum_sha1 = Some(value),
            Self::Sha256 => checksum.checksum_sha256 = Some(value),
        }
        checksum
    }

    /// Its key in the object's internal info, where s3s-fs's HeadObject and GetObject read it.
    pub(super) fn info_key(self) -> &'static str {
        match self {
            Self::Crc32 => "checksum_crc32",
            Self::Crc32c => "checksum_crc32c",
            Self::Sha1 => "checksum_sha1",
            Self::Sha256 => "checksum_sha256",
        }
    }
}

/// The algorithm the upload was created with, from its record. (An upload without a record is
/// refused by the upload guard before it gets here, or was completed meanwhile.)
pub(super) fn declared_algorithm(layout: &Layout, id: Uuid) -> S3Result<Option<Composite>> {
    let mut name = [0u8; 16];
    match read_attribute(
        &layout.record(id.hyphenated()),
        ALGORITHM_ATTRIBUTE,
        &mut name,
    ) {
        Some(n) => std::str::from_utf8(&name[..n])
            .ok()
            .and_then(Composite::from_name)
            .map(Some)
            .ok_or_else(|| {
                s3_error!(
                    InternalError,
                    "the upload's checksum algorithm is unreadable"
                )
            }),
        None => Ok(None),
    }
}

/// The checksums a part's sender declared, and the hashers that check them.
pub(super) struct Digests {
    pub(super) hasher: ChecksumHasher,
    declared: dto::Checksum,
    /// The algorithms the part names (a value in a header, or the algorithm of a trailer).
    named: Vec<&'static str>,
}

impl Digests {
    pub(super) fn wanted(input: &UploadPartInput) -> S3Result<Self> {
        let mut hasher = ChecksumHasher::default();
        let declared = dto::Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_type: None,
        };
        // A value in a header, or only the algorithm, with the value to come in a trailer.
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(ChecksumAlgorithm::as_str);
        let mut named = Vec::new();
        let mut is_named = |value: &Option<String>, name: &'static str| {
            let yes = value.is_some() || algorithm == Some(name);
            if yes {
                named.push(name);
            }
            yes
        };
        if is_named(&declared.checksum_crc32, ChecksumAlgorithm::CRC32) {
            hasher.crc32 = Some(Default::default());
        }
        if is_named(&declared.checksum_crc32c, ChecksumAlgorithm::CRC32C) {
            hasher.crc32c = Some(Default::default());
        }
        if is_named(&declared.checksum_sha1, ChecksumAlgorithm::SHA1) {
            hasher.sha1 = Some(Default::default());
        }
        if is_named(&declared.checksum_sha256, ChecksumAlgorithm::SHA256) {
            hasher.sha256 = Some(Default::default());
        }
        if is_named(&declared.checksum_crc64nvme, ChecksumAlgorithm::CRC64NVME) {
            hasher.crc64nvme = Some(Default::default());
        }
        if let Some(name) = algorithm
            && ![
                ChecksumAlgorithm::CRC32,
                ChecksumAlgorithm::CRC32C,
                ChecksumAlgorithm::SHA1,
                ChecksumAlgorithm::SHA256,
                ChecksumAlgorithm::CRC64NVME,
            ]
            .contains(&name)
        {
            return Err(s3_error!(
                InvalidArgument,
                "Unsupported checksum algorithm {name}"
            ));
        }
        Ok(Self {
            hasher,
            declared,
            named,
        })
    }

    /// S3's rule for an upload created with `algorithm`: each part carries that checksum, and no
    /// other.
    pub(super) fn check_type(&self, algorithm: Composite) -> S3Result<()> {
        if self.named == [algorithm.name()] {
            return Ok(());
        }
        let actual = match self.named.as_slice() {
            [] => "null".to_owned(),
            names => names.join(",").to_ascii_lowercase(),
        };
        Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum \
             Type: {actual}",
            algorithm.name().to_ascii_lowercase()
        ))
    }

    /// Compares what arrived with every declared value (headers first, then trailers); the
    /// verified values.
    pub(super) fn verify(
        self,
        trailers: Option<&axum::http::HeaderMap>,
    ) -> S3Result<dto::Checksum> {
        let mut declared = self.declared;
        if let Some(trailers) = trailers {
            let fields = [
                ("x-amz-checksum-crc32", &mut declared.checksum_crc32),
                ("x-amz-checksum-crc32c", &mut declared.checksum_crc32c),
                ("x-amz-checksum-sha1", &mut declared.checksum_sha1),
                ("x-amz-checksum-sha256", &mut declared.checksum_sha256),
                ("x-amz-checksum-crc64nvme", &mut declared.checksum_crc64nvme),
            ];
            for (name, field) in fields {
                if let Some(value) = trailers.get(name) {
                    let value = value
                        .to_str()
                        .map_err(|_| s3_error!(InvalidArgument, "{name} is not text"))?;
                    *field = Some(value.to_owned());
                }
            }
        }
        let computed = self.hasher.finalize();
        let pairs = [
            ("CRC32", &declared.checksum_crc32, &computed.checksum_crc32),
            (
                "CRC32C",
                &declared.checksum_crc32c,
                &computed.checksum_crc32c,
            ),
            ("SHA1", &declared.checksum_sha1, &computed.checksum_sha1),
            (
                "SHA256",
                &declared.checksum_sha256,
                &computed.checksum_sha256,
            ),
            (
                "CRC64NVME",
                &declared.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
            ),
        ];
        for (name, declared, computed) in pairs {
            if declared.is_some() && declared != computed {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} you specified did not match the calculated checksum."
                ));
            }
        }
        Ok(declared)
    }
}

/// Standard base64, as S3 writes checksums; `None` for anything else.
pub(super) fn decode_base64(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}
