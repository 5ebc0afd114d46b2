//! Completing an upload in the embedded store: every named part is checked first (numbered
//! 1..=N, present, at least 5 MiB but the last, the ETag and, for an upload created with an
//! algorithm, the checksum the caller names), so a refused completion leaves the upload as it
//! was; then the parts are joined with `copy_file_range` (`std::io::copy` between files on Linux,
//! no copy through this process), the multipart ETag derived from the kept digests, and the
//! upload retired. Runs on the blocking pool.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{self, CompletedPart, ETag, ETagCondition};
use s3s::{S3Result, s3_error};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::checksums::{Composite, decode_base64};
use super::files::{create_temp, hash_file, internal, md5_of, persist, remove_if_present};
use super::layout::Layout;
use super::xattr::{kept_checksum, kept_md5};

/// The smallest size of a non-last part (S3's rule).
const MIN_PART_SIZE: u64 = s3_direct_protocol::limits::MIN_PART_SIZE;

/// Joins the parts into the object and retires the upload; the object's ETag, and its composite
/// checksum when the upload was created with an algorithm.
pub(super) fn assemble(
    layout: &Layout,
    id: Uuid,
    parts: &[CompletedPart],
    declared: Option<Composite>,
    bucket: &str,
    key: &str,
    object: &Path,
) -> S3Result<(String, Option<dto::Checksum>)> {
    let id = id.hyphenated();
    // Every part is checked before anything is written, so a refused completion leaves the
    // upload as it was, for the caller to send the parts again.
    let checked = check_parts(layout, id, parts, declared)?;
    join(layout, &checked.parts, object)?;

    let e_tag = format!("{}-{}", hex::encode(checked.md5s.finalize()), parts.len());
    // The new object's ETag and checksum; those of an earlier object at this key do not carry
    // over.
    let mut info = serde_json::Map::new();
    info.insert("e_tag".to_owned(), e_tag.clone().into());
    let checksum = checked.composite.and_then(|(algorithm, hasher)| {
        let value = format!("{}-{}", algorithm.pick(&hasher.finalize())?, parts.len());
        info.insert(algorithm.info_key().to_owned(), value.clone().into());
        Some(algorithm.checksum(value))
    });
    let info = serde_json::Value::Object(info).to_string();
    let (mut file, info_temp) = create_temp(layout)?;
    file.write_all(info.as_bytes()).map_err(internal)?;
    drop(file);
    persist(info_temp, &layout.internal_info(bucket, key))?;
    retire(layout, id, bucket, key, &checked.parts)?;
    Ok((e_tag, checksum))
}

/// A part that passed the checks: its number, its file, and the MD5 kept with it (if any).
type CheckedPart = (i32, PathBuf, Option<[u8; 16]>);

/// What the checks of a completion found: its parts, the hash of their MD5s (the multipart
/// ETag's), and the composite checksum's hash for an upload created with an algorithm.
struct Checked {
    parts: Vec<CheckedPart>,
    md5s: Md5,
    composite: Option<(Composite, ChecksumHasher)>,
}

/// Checks every named part against the part files: numbered 1..=N, present, at least 5 MiB but
/// the last, the ETag (and checksum) the caller names. The part files are not held open after:
/// an upload may have 10,000 parts, far more than a process may usually keep open.
fn check_parts(
    layout: &Layout,
    id: Hyphenated,
    parts: &[CompletedPart],
    declared: Option<Composite>,
) -> S3Result<Checked> {
    let mut checked = Checked {
        parts: Vec::with_capacity(parts.len()),
        md5s: Md5::new(),
        composite: declared.map(|a| (a, a.hasher())),
    };
    for (index, part) in parts.iter().enumerate() {
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if part.part_number != Some(number) {
            return Err(s3_error!(
                InvalidPart,
                "The embedded store needs parts numbered 1..={} without gaps; part {number} is missing",
                parts.len()
            ));
        }
        let path = layout.part(id, number);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {number} has not been uploaded"
                ));
            }
            Err(e) => return Err(internal(e)),
        };
        let size = file.metadata().map_err(internal)?.len();
        if index + 1 < parts.len() && size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Part {number} is {size} bytes, below the 5 MiB minimum for all but the last part"
            ));
        }
        let kept = kept_md5(&file);
        let md5 = match kept {
            Some(md5) => md5,
            None => {
                tracing::debug!(
                    part = number,
                    "embedded store: no MD5 kept with the part; hashing it"
                );
                md5_of(&file).map_err(internal)?
            }
        };
        let named = part.e_tag.as_ref().map(|t| t.value().trim_matches('"'));
        if !named.is_some_and(|named| named.eq_ignore_ascii_case(&hex::encode(md5))) {
            return Err(s3_error!(
                InvalidPart,
                "Part {number}'s ETag does not match the part the store holds"
            ));
        }
        if let Some((algorithm, hasher)) = &mut checked.composite {
            let digest = part_checksum(&file, *algorithm, number, part)?;
            hasher.update(&digest);
        }
        checked.md5s.update(&md5);
        checked.parts.push((number, path, kept));
    }
    Ok(checked)
}

/// Joins the checked parts into `object`, through a temporary file renamed into place.
fn join(layout: &Layout, checked: &[CheckedPart], object: &Path) -> S3Result<()> {
    let started = std::time::Instant::now();
    let (mut out, temp) = create_temp(layout)?;
    for (number, path, kept) in checked {
        let mut file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                s3_error!(
                    NoSuchUpload,
                    "The upload was completed or aborted meanwhile."
                )
            }
            _ => internal(e),
        })?;
        // A part sent again since the check carries another digest (or none).
        if kept_md5(&file) != *kept {
            return Err(s3_error!(
                InvalidPart,
                "Part {number} was replaced while the upload was being completed"
            ));
        }
        // File to file: copy_file_range on Linux, so the bytes stay in the kernel.
        io::copy(&mut file, &mut out).map_err(internal)?;
    }
    drop(out);
    tracing::debug!(elapsed = ?started.elapsed(), "embedded store: parts joined");
    if let Some(dir) = object.parent() {
        std::fs::create_dir_all(dir).map_err(internal)?;
    }
    persist(temp, object)
}

/// Retires a completed upload: the attributes given at creation become the object's, and its
/// record and part files go.
fn retire(
    layout: &Layout,
    id: Hyphenated,
    bucket: &str,
    key: &str,
    checked: &[CheckedPart],
) -> S3Result<()> {
    // (Gone only if a second completion of the same upload got here first, with the same
    // attributes.)
    match std::fs::rename(
        layout.attributes(bucket, key, Some(id)),
        layout.attributes(bucket, key, None::<&str>),
    ) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(internal(e)),
        _ => {}
    }
    remove_if_present(&layout.record(id))?;
    for (_, path, _) in checked {
        remove_if_present(path)?;
    }
    Ok(())
}

/// The digest of `part` of the algorithm the upload was created with: the completion must name
/// it, and it must be the one kept with the part (or, where none was kept, its hash).
fn part_checksum(
    file: &File,
    algorithm: Composite,
    number: i32,
    part: &CompletedPart,
) -> S3Result<Vec<u8>> {
    let named = algorithm.named_in(part).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "The upload was created using a {} checksum. The complete request must include the \
             checksum for each part. It was missing for part {number} in the request.",
            algorithm.name().to_ascii_lowercase()
        )
    })?;
    let held = match kept_checksum(file) {
        Some(value) => value,
        None => {
            let mut hasher = algorithm.hasher();
            hash_file(file, |chunk| hasher.update(chunk)).map_err(internal)?;
            algorithm
                .pick(&hasher.finalize())
                .cloned()
                .unwrap_or_default()
        }
    };
    let held = decode_base64(&held);
    if held.is_none() || held != decode_base64(named) {
        return Err(s3_error!(
            InvalidPart,
            "Part {number}'s {} checksum does not match the part the store holds",
            algorithm.name()
        ));
    }
    Ok(held.unwrap_or_default())
}

/// `If-None-Match: *` and `If-Match` on completion, as s3s-fs handled them.
pub(super) fn check_conditions(
    layout: &Layout,
    bucket: &str,
    key: &str,
    object: &Path,
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> S3Result<()> {
    if if_none_match.as_ref().is_some_and(ETagCondition::is_any) && object.exists() {
        return Err(s3_error!(PreconditionFailed, "Object already exists"));
    }
    let Some(condition) = if_match else {
        return Ok(());
    };
    if !object.exists() {
        return Err(s3_error!(PreconditionFailed, "Object does not exist"));
    }
    let Some(expected) = condition.as_etag() else {
        return Ok(()); // `*`: it exists
    };
    let stored = std::fs::read(layout.internal_info(bucket, key))
        .ok()
        .and_then(|info| serde_json::from_slice::<serde_json::Value>(&info).ok())
        .and_then(|info| info.get("e_tag")?.as_str().map(str::to_owned));
    let current = match stored {
        Some(e_tag) => e_tag,
        None => hex::encode(md5_of(&File::open(object).map_err(internal)?).map_err(internal)?),
    };
    if ETag::Strong(current).strong_cmp(expected) {
        Ok(())
    } else {
        Err(s3_error!(PreconditionFailed, "ETag does not match"))
    }
}
