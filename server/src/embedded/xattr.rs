//! Extended attributes the embedded store keeps beside s3s-fs's files: each part's MD5 (its ETag)
//! and its checksum of the upload's algorithm, set before the part file is renamed into place so
//! they always belong to the bytes beside them, and the algorithm an upload was created with, on
//! its record. On Linux only (rustix); where a file system cannot keep them, completion hashes the
//! part again.

use std::fs::File;
use std::io;
use std::path::Path;

/// The attribute that carries a part file's MD5.
#[cfg(target_os = "linux")]
const MD5_ATTRIBUTE: &str = "user.s3-direct.md5";
/// The attribute of a part file that carries its checksum of the upload's algorithm (base64).
#[cfg(target_os = "linux")]
const CHECKSUM_ATTRIBUTE: &str = "user.s3-direct.checksum";
/// The attribute of an upload's record that names the algorithm it was created with.
pub(super) const ALGORITHM_ATTRIBUTE: &str = "user.s3-direct.checksum-algorithm";

/// Sets an extended attribute of the file at `path`.
pub(super) fn keep_attribute(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, name, value);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "extended attributes are used on Linux only",
        ))
    }
}

/// Reads an extended attribute of the file at `path` into `buf`: its length, or `None` when the
/// file has none (or it does not fit).
pub(super) fn read_attribute(path: &Path, name: &str, buf: &mut [u8]) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::getxattr(path, name, buf).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, name, buf);
        None
    }
}

/// Attaches the checksum of the upload's algorithm to the part file; where the file system
/// cannot keep it, completion hashes the part again.
pub(super) fn keep_checksum(file: &File, value: &str) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::fs::fsetxattr(
        file,
        CHECKSUM_ATTRIBUTE,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    ) {
        tracing::debug!(
            "embedded store: a part's checksum is not kept ({e}); completion will hash it"
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, value);
}

/// The checksum of the upload's algorithm kept with the part file, if any.
pub(super) fn kept_checksum(file: &File) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        // Base64 of a SHA-256 is 44 characters.
        let mut value = [0u8; 64];
        let n = rustix::fs::fgetxattr(file, CHECKSUM_ATTRIBUTE, &mut value).ok()?;
        String::from_utf8(value[..n].to_vec()).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// Attaches the MD5 to the part file; where the file system cannot keep it, completion hashes
/// the part again.
pub(super) fn keep_md5(file: &File, md5: &[u8; 16]) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::fs::fsetxattr(file, MD5_ATTRIBUTE, md5, rustix::fs::XattrFlags::empty())
    {
        tracing::debug!("embedded store: a part's MD5 is not kept ({e}); completion will hash it");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, md5);
}

/// The MD5 kept with the part file, if any.
pub(super) fn kept_md5(file: &File) -> Option<[u8; 16]> {
    #[cfg(target_os = "linux")]
    {
        let mut md5 = [0u8; 16];
        match rustix::fs::fgetxattr(file, MD5_ATTRIBUTE, &mut md5) {
            Ok(16) => Some(md5),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}
