//! Where s3s-fs 0.14.1 keeps things in its root (the data dir), in one place for every part of
//! the server that reads or writes them beside s3s-fs: the upload guard, the multipart path
//! (`multipart.rs`) and the operator commands (`ops/embedded.rs`).
//!
//! Per open upload: a record `.upload-{uuid}.json` (the access key that created it, as JSON), the
//! object's attributes `.bucket-{b64(bucket)}.object-{b64(key)}.upload-{uuid}.metadata.json` and
//! each part as `.upload_id-{uuid}.part-{n}`. Per object: the file `{bucket}/{key}`, its
//! attributes `.bucket-{b64}.object-{b64}.metadata.json` and its ETag and checksums in
//! `.bucket-{b64}.object-{b64}.internal.json`. `b64` is base64url without padding. Temporary files
//! are `.tmp.{name}.internal.part`; s3s-fs removes leftovers of those when it starts.
//!
//! Names built from a whole key limit the key (`docs/stores.md`, "Keys"): a file name has at most
//! 255 bytes on Linux file systems (ext4, xfs, btrfs, tmpfs), and the longest such name is an
//! upload's attributes file, where the key takes 4 characters per 3 bytes. [`max_key_bytes`] is what that leaves (126
//! bytes for the bucket `s3-direct`); s3s-fs answers any longer key with an I/O error
//! (`ENAMETOOLONG`, "File name too long"), which reached clients as `store_unavailable`.

use std::fmt::Display;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The names s3s-fs gives its files under `root`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The upload's record: which access key created it. Its modification time is the start.
    pub(crate) fn record(&self, upload_id: impl Display) -> PathBuf {
        self.root.join(format!(".upload-{upload_id}.json"))
    }

    /// The object attributes (content type, user metadata) saved for an upload, or, without an
    /// upload id, those of the object.
    pub(crate) fn attributes(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Option<impl Display>,
    ) -> PathBuf {
        let upload = upload_id
            .map(|u| format!(".upload-{u}"))
            .unwrap_or_default();
        self.root.join(format!(
            "{}{upload}.metadata.json",
            object_head(bucket, key)
        ))
    }

    /// The object's ETag and checksums (a JSON map: `e_tag`, `checksum_crc32c`, …).
    pub(crate) fn internal_info(&self, bucket: &str, key: &str) -> PathBuf {
        self.root
            .join(format!("{}.internal.json", object_head(bucket, key)))
    }

    /// The file name prefix of every part of an upload; the part number follows it.
    pub(crate) fn part_prefix(upload_id: impl Display) -> String {
        format!(".upload_id-{upload_id}.part-")
    }

    pub(crate) fn part(&self, upload_id: impl Display, number: i32) -> PathBuf {
        self.root
            .join(format!("{}{number}", Self::part_prefix(upload_id)))
    }

    /// The prefix of every attributes file of `bucket`'s objects and uploads.
    pub(crate) fn attributes_prefix(bucket: &str) -> String {
        format!(".bucket-{}.object-", encode(bucket))
    }

    /// The object's file, `None` for a key that is not a relative path of normal components
    /// (`..`, a leading `/`, an empty key). s3s-fs resolves `..` inside the bucket instead; no
    /// key this server makes has one.
    pub(crate) fn object(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let key = Path::new(key);
        let normal = key.components().next().is_some()
            && key.components().all(|c| matches!(c, Component::Normal(_)));
        normal.then(|| self.root.join(bucket).join(key))
    }

    /// A new temporary file in the root, named in the shape s3s-fs removes at start if it is
    /// left behind; removed when dropped unless it is persisted. Created as `File::create` would
    /// (mode 0666 less the umask), since it may become an object.
    pub(crate) fn temp_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let mut temp = tempfile::Builder::new();
        temp.prefix(".tmp.s3d-").suffix(".internal.part");
        #[cfg(unix)]
        temp.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        temp.tempfile_in(&self.root)
    }
}

/// Longest file name the data dir's file system takes (`NAME_MAX`).
const MAX_FILE_NAME_BYTES: usize = 255;

/// Longest key whose files s3s-fs can name in `bucket`: base64url of `n` bytes is `ceil(4n / 3)`
/// characters, in what the longest name (an upload's attributes file) leaves of 255 bytes.
pub(crate) fn max_key_bytes(bucket: &str) -> usize {
    let longest = Layout::new(Path::new(""))
        .attributes(bucket, "", Some(uuid::Uuid::nil()))
        .into_os_string()
        .len();
    MAX_FILE_NAME_BYTES.saturating_sub(longest) * 3 / 4
}

fn object_head(bucket: &str, key: &str) -> String {
    format!("{}{}", Layout::attributes_prefix(bucket), encode(key))
}

/// Base64url without padding, the file-name encoding s3s-fs uses for bucket and key.
pub(crate) fn encode(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name)
}

/// The inverse of [`encode`], `None` for anything s3s-fs would not have written.
pub(crate) fn decode(name: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(name)
        .ok()
        .and_then(|k| String::from_utf8(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_files_s3s_fs_writes() {
        let l = Layout::new(Path::new("/data"));
        let id = "c4413e2e-50a8-40ac-aee0-053bf02a5692";
        assert_eq!(
            l.record(id),
            Path::new("/data/.upload-c4413e2e-50a8-40ac-aee0-053bf02a5692.json")
        );
        assert_eq!(
            l.attributes("s3-direct", "a/ñ 日本.bin", Some(id)),
            Path::new(
                "/data/.bucket-czMtZGlyZWN0.object-YS_DsSDml6XmnKwuYmlu.upload-c4413e2e-50a8-40ac-aee0-053bf02a5692.metadata.json"
            )
        );
        assert_eq!(
            l.attributes("s3-direct", "a", None::<&str>),
            Path::new("/data/.bucket-czMtZGlyZWN0.object-YQ.metadata.json")
        );
        assert_eq!(
            l.internal_info("s3-direct", "a"),
            Path::new("/data/.bucket-czMtZGlyZWN0.object-YQ.internal.json")
        );
        assert_eq!(
            l.part(id, 7),
            Path::new("/data/.upload_id-c4413e2e-50a8-40ac-aee0-053bf02a5692.part-7")
        );
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path());
        let temp = l.temp_file().unwrap();
        let name = temp.path().file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(".tmp.") && name.ends_with(".internal.part"),
            "{name}"
        );
        assert_ne!(l.temp_file().unwrap().path(), temp.path());
    }

    /// A temporary file becomes a part or an object: it gets the mode `File::create` gives.
    #[cfg(unix)]
    #[test]
    fn temporary_files_get_the_mode_of_a_created_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        let created = dir.path().join("created");
        std::fs::File::create(&created).unwrap();
        let temp = Layout::new(dir.path()).temp_file().unwrap();
        assert_eq!(mode(temp.path()), mode(&created));
    }

    #[test]
    fn the_longest_key_names_its_longest_file_within_255_bytes() {
        let name_len = |bucket: &str, key: &str| {
            let l = Layout::new(Path::new("/data"));
            let id = uuid::Uuid::new_v4();
            [
                l.attributes(bucket, key, Some(id)),
                l.attributes(bucket, key, None::<&str>),
                l.internal_info(bucket, key),
            ]
            .iter()
            .map(|p| p.file_name().unwrap().len())
            .max()
            .unwrap()
        };
        assert_eq!(max_key_bytes("s3-direct"), 126);
        for bucket in ["s3-direct", "abc", &"b".repeat(63)] {
            let max = max_key_bytes(bucket);
            assert!(max >= 72, "{bucket}: {max}");
            assert!(name_len(bucket, &"k".repeat(max)) <= MAX_FILE_NAME_BYTES);
            assert!(name_len(bucket, &"k".repeat(max + 1)) > MAX_FILE_NAME_BYTES);
        }
    }

    #[test]
    fn base64url_round_trips_without_padding() {
        assert_eq!(encode("s3-direct"), "czMtZGlyZWN0");
        assert_eq!(encode(""), "");
        assert_eq!(encode("a"), "YQ");
        assert_eq!(encode("ab"), "YWI");
        let key = "uploads/c4413e2e-50a8-40ac-aee0-053bf02a5692/ñ 日本.bin";
        assert_eq!(
            encode(key),
            "dXBsb2Fkcy9jNDQxM2UyZS01MGE4LTQwYWMtYWVlMC0wNTNiZjAyYTU2OTIvw7Eg5pel5pysLmJpbg"
        );
        assert_eq!(decode(&encode(key)).as_deref(), Some(key));
        assert_eq!(decode("not base64!"), None);
    }

    #[test]
    fn object_paths_stay_inside_their_bucket() {
        let l = Layout::new(Path::new("/data"));
        assert_eq!(
            l.object("b", "uploads/x/file.bin"),
            Some(PathBuf::from("/data/b/uploads/x/file.bin"))
        );
        for bad in ["", "/etc/passwd", "../other/x", "a/../../x", "a/.."] {
            assert_eq!(l.object("b", bad), None, "{bad}");
        }
    }
}
