//! File plumbing of the embedded store's multipart path: temporary files in the store's root
//! (renamed into place, removed otherwise), hashing a file, removing one that may be gone, and an
//! I/O failure as S3's `InternalError`.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use s3s::crypto::{Checksum as _, Md5};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// How much of a part is buffered before it is written: one blocking-pool trip per MiB instead of
/// one per network read; also the read buffer when a file is hashed.
pub(super) const WRITE_BUFFER: usize = 1 << 20;

/// A temporary file in the store's root, removed unless it is renamed into place.
pub(super) struct TempFile(pub(super) PathBuf);

impl TempFile {
    pub(super) async fn persist(self, to: &Path) -> S3Result<()> {
        tokio::fs::rename(&self.0, to).await.map_err(internal)?;
        std::mem::forget(self);
        Ok(())
    }

    pub(super) fn persist_blocking(self, to: &Path) -> S3Result<()> {
        std::fs::rename(&self.0, to).map_err(internal)?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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

/// Lowercase hex, as S3 writes an ETag.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
