//! File plumbing of the embedded store's multipart path: temporary files in the store's root
//! (renamed into place, removed otherwise), hashing a file, removing one that may be gone, and an
//! I/O failure as S3's `InternalError`.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use s3s::crypto::{Checksum as _, Md5};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use tempfile::TempPath;

use super::layout::Layout;

/// How much of a part is buffered before it is written: one blocking-pool trip per MiB instead of
/// one per network read; also the read buffer when a file is hashed.
pub(super) const WRITE_BUFFER: usize = 1 << 20;

/// A new temporary file in the store's root ([`Layout::temp_file`]): its handle, and its path,
/// which removes the file when dropped unless it is persisted (renamed into place).
pub(super) fn create_temp(layout: &Layout) -> S3Result<(File, TempPath)> {
    Ok(layout.temp_file().map_err(internal)?.into_parts())
}

/// Renames a temporary file into place (removing it if that fails).
pub(super) fn persist(temp: TempPath, to: &Path) -> S3Result<()> {
    temp.persist(to).map_err(|e| internal(e.error))
}

/// [`create_temp`] on the blocking pool, its handle for tokio.
pub(super) async fn create_temp_async(layout: &Layout) -> S3Result<(tokio::fs::File, TempPath)> {
    let layout = layout.clone();
    let (file, temp) = blocking(move || create_temp(&layout)).await?;
    Ok((tokio::fs::File::from_std(file), temp))
}

/// [`persist`] on the blocking pool.
pub(super) async fn persist_async(temp: TempPath, to: PathBuf) -> S3Result<()> {
    blocking(move || persist(temp, &to)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> S3Result<T> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| s3_error!(InternalError, "a file operation stopped: {e}"))?
}

/// The MD5 of a file, from its start.
pub(super) fn md5_of(file: &File) -> io::Result<[u8; 16]> {
    let mut md5 = Md5::new();
    hash_file(file, |chunk| md5.update(chunk))?;
    Ok(md5.finalize())
}

/// Feeds a file from its start to `update`, and leaves it at its start again.
pub(super) fn hash_file(mut file: &File, mut update: impl FnMut(&[u8])) -> io::Result<()> {
    file.rewind()?;
    let mut buf = vec![0u8; WRITE_BUFFER];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        update(&buf[..n]);
    }
    file.rewind()
}

/// Removes the file at `path`; one already gone is no failure.
pub(super) fn remove_if_present(path: &Path) -> S3Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(internal(e)),
        _ => Ok(()),
    }
}

/// An I/O failure as S3's `InternalError`, its cause kept for the log.
pub(super) fn internal(e: io::Error) -> S3Error {
    S3Error::with_source(S3ErrorCode::InternalError, Box::new(e))
}
