//! Conversions between the SDK's types and the store's: part numbers, checksum algorithms and
//! reported checksums, listed and completed parts, and SDK failures into [`StoreError`]s the
//! routes can act on.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::CompletedPart as SdkCompletedPart;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CompletedPart, ListedPart, PartChecksumFields};

use crate::store::StoreError;

/// The first checksum a store's answer reports, as `ALGO:BASE64` (the value as the store gave it,
/// `-N` included for a multipart object's composite).
pub(super) fn reported_checksum(values: [(ChecksumAlgorithm, Option<&str>); 3]) -> Option<String> {
    values.into_iter().find_map(|(algorithm, value)| {
        value
            .filter(|v| !v.is_empty())
            .map(|v| format!("{algorithm}:{v}"))
    })
}

/// Part numbers are validated to 1..=10,000 before any store call, so this cannot truncate.
pub(super) fn part_number_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The SDK's name for an algorithm declared at create; MD5 is not one (S3 checks `Content-MD5`
/// on any upload).
pub(super) fn sdk_checksum_algorithm(
    algorithm: ChecksumAlgorithm,
) -> Option<aws_sdk_s3::types::ChecksumAlgorithm> {
    use aws_sdk_s3::types::ChecksumAlgorithm as Sdk;
    match algorithm {
        ChecksumAlgorithm::Md5 => None,
        ChecksumAlgorithm::Crc32 => Some(Sdk::Crc32),
        ChecksumAlgorithm::Crc32c => Some(Sdk::Crc32C),
        ChecksumAlgorithm::Sha256 => Some(Sdk::Sha256),
    }
}

/// `$builder` (an UploadPart or PutObject request of the SDK, which have the same four setters
/// but no common trait) with the checksum `$value` of `$algorithm` set: `Content-MD5` or
/// `x-amz-checksum-*`.
macro_rules! with_checksum {
    ($builder:expr, $algorithm:expr, $value:expr) => {
        match $algorithm {
            s3_direct_protocol::wire::ChecksumAlgorithm::Md5 => $builder.content_md5($value),
            s3_direct_protocol::wire::ChecksumAlgorithm::Crc32 => $builder.checksum_crc32($value),
            s3_direct_protocol::wire::ChecksumAlgorithm::Crc32c => {
                $builder.checksum_crc32_c($value)
            }
            s3_direct_protocol::wire::ChecksumAlgorithm::Sha256 => $builder.checksum_sha256($value),
        }
    };
}
pub(super) use with_checksum;

/// Maps an SDK failure to what the caller can act on; everything unexpected keeps its full
/// error chain for the log.
pub(super) fn classify<E>(op: &'static str, upload_id: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = lowercase_first(err.message().unwrap_or("no details given"));
    match err.code() {
        // Ceph 16 answers ListParts of a completed upload with NoSuchKey (docs/stores.md,
        // "Completion").
        Some("NoSuchUpload") => StoreError::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        },
        Some("NoSuchKey") if !upload_id.is_empty() => StoreError::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        },
        Some("InvalidPart" | "InvalidPartOrder") => StoreError::InvalidPart { message },
        Some("EntityTooSmall") => StoreError::EntityTooSmall { message },
        _ => StoreError::unavailable(op, DisplayErrorContext(&err).to_string()),
    }
}

/// A part as ListParts lists it; what the store leaves out is 0 or empty.
pub(super) fn listed_part(p: &aws_sdk_s3::types::Part) -> ListedPart {
    ListedPart {
        part_number: p
            .part_number()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        etag: p.e_tag().unwrap_or_default().to_owned(),
        size: p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        checksums: PartChecksumFields {
            crc32: p.checksum_crc32().map(str::to_owned),
            crc32c: p.checksum_crc32_c().map(str::to_owned),
            sha256: p.checksum_sha256().map(str::to_owned),
        },
    }
}

/// A part a completion names, with its checksum of the upload's algorithm if it has one.
pub(super) fn sdk_completed_part(p: &CompletedPart) -> SdkCompletedPart {
    SdkCompletedPart::builder()
        .part_number(part_number_i32(p.part_number))
        .e_tag(&p.etag)
        .set_checksum_crc32(p.checksums.crc32.clone())
        .set_checksum_crc32_c(p.checksums.crc32c.clone())
        .set_checksum_sha256(p.checksums.sha256.clone())
        .build()
}

/// Store messages are sentences ("One or more of the specified parts could not be found.");
/// ours continue them mid-sentence.
fn lowercase_first(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_messages_continue_our_sentences() {
        assert_eq!(
            lowercase_first("One or more of the specified parts could not be found."),
            "one or more of the specified parts could not be found"
        );
        assert_eq!(lowercase_first(""), "");
    }
}
