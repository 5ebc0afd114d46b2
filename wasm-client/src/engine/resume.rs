//! Resuming an upload after a reload or a browser crash.
//!
//! While an upload runs, the engine keeps a [`ResumeRecord`] in a [`ResumeStore`] (IndexedDB in
//! the browser): the multipart upload's id and key, the part size, the file's fingerprint, and
//! each stored part's number, size and ETag. When the same file is uploaded again, the engine
//! finds the record by fingerprint, asks the signing server which parts the store holds, and
//! sends only the others.
//!
//! The fingerprint is the file's name, size and modification time plus a hash of bytes sampled
//! from it, so a different file with the same name (or an edited one with the same size) never
//! gets another file's parts. Records of finished or cancelled uploads are removed; records not
//! touched for [`DEFAULT_RECORD_MAX_AGE_MS`] are treated as gone (stores and the server's purge
//! drop abandoned multipart uploads after a while anyway).
//!
//! The running upload writes its record through a `Journal`, which batches the writes: at most
//! one every [`JOURNAL_INTERVAL_MS`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use s3_direct_protocol::wire::{ChecksumAlgorithm, CreateMultipartResponse, ListedPart};

use super::parts::PartMap;
use super::ports::Clock;

/// How long a resume record stays usable after its last update: a week.
pub const DEFAULT_RECORD_MAX_AGE_MS: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;

/// What identifies a file across page loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub name: String,
    pub size: u64,
    /// `File.lastModified`, milliseconds since the epoch; 0 when unknown.
    pub last_modified: u64,
    /// Hash of bytes sampled from the file (see [`sample_ranges`]), as hex.
    pub sample_hash: String,
}

impl Fingerprint {
    /// The key records are stored under.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.size, self.last_modified, self.sample_hash, self.name
        )
    }
}

/// Bytes to sample for the fingerprint: up to 64 KiB at the start, the middle and the end.
pub fn sample_ranges(size: u64) -> Vec<std::ops::Range<u64>> {
    const SAMPLE: u64 = 64 * 1024;
    if size <= 3 * SAMPLE {
        // One range: the whole (small) file.
        #[allow(clippy::single_range_in_vec_init)]
        return vec![0..size];
    }
    let mid = size / 2 - SAMPLE / 2;
    vec![0..SAMPLE, mid..mid + SAMPLE, size - SAMPLE..size]
}

/// A 128-bit FNV-1a style hash of the sampled bytes (two 64-bit lanes with different offsets),
/// as hex. Not cryptographic: it tells apart files that share name, size and date.
pub fn sample_hash(samples: &[&[u8]]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for sample in samples {
        for &byte in *sample {
            a = (a ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x10);
        }
        a = (a ^ 0xff).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x10);
    }
    format!("{a:016x}{b:016x}")
}

/// A stored part, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPart {
    pub size: u64,
    pub etag: String,
    /// The part's checksum as sent to the store (`ALGO:BASE64`), when one was.
    pub checksum: Option<String>,
}

/// Everything needed to continue an upload later.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeRecord {
    pub fingerprint: Fingerprint,
    pub upload_id: String,
    pub key: String,
    pub bucket: String,
    pub part_size: u64,
    pub parts: PartMap<RecordedPart>,
    /// Clock time of the last change.
    pub updated_ms: f64,
    /// The checksum every part carries, if any.
    pub checksum: Option<ChecksumAlgorithm>,
}

impl ResumeRecord {
    pub fn upload(&self) -> CreateMultipartResponse {
        CreateMultipartResponse {
            key: self.key.clone(),
            upload_id: self.upload_id.clone(),
            bucket: self.bucket.clone(),
            part_size: Some(self.part_size),
            checksum: self.checksum,
            presigned: None,
        }
    }
}

/// Where resume records live. Writes are fire-and-forget (the browser's IndexedDB finishes them
/// on its own time; losing the last one costs re-sending a part, not correctness).
pub trait ResumeStore {
    /// The record stored under `key`, if any.
    fn load(&self, key: &str) -> LocalBoxFuture<'static, Option<ResumeRecord>>;
    /// Stores `record` under its fingerprint's key, replacing any earlier one.
    fn save(&self, record: &ResumeRecord);
    fn remove(&self, key: &str);
    /// Removes every record last updated before `ms` (clock time).
    fn remove_older_than(&self, ms: f64);
}

/// The parts of `record` that the store still holds, by `listed` (its ListParts answer). A part
/// counts when the store lists it with the recorded size and, if the store reports ETags, the
/// recorded ETag (stock s3s-fs lists none; its size must then do). Parts the store lists
/// that the record lacks — PUTs that finished as the page died — count when their ETag is known,
/// their size is the plan's and, for an upload that completes with CRC or SHA-256 part
/// checksums, the store lists the part's checksum.
pub fn reconcile(
    record: &ResumeRecord,
    listed: &[ListedPart],
    plan_size: impl Fn(u32) -> Option<u64>,
) -> PartMap<RecordedPart> {
    let listed: PartMap<&ListedPart> = listed.iter().map(|p| (p.part_number, p)).collect();
    let mut usable = PartMap::new();
    for (n, recorded) in record.parts.iter() {
        let Some(l) = listed.get(n) else { continue };
        let etag_ok = l.etag.is_empty() || same_etag(&l.etag, &recorded.etag);
        if etag_ok && l.size == recorded.size && plan_size(n) == Some(recorded.size) {
            usable.insert(n, recorded.clone());
        }
    }
    // Listed parts the record lacks. With checksums completed per part (CRC, SHA-256), each needs
    // its checksum, which a store lists for an upload created with the algorithm; one listed
    // without it is sent again rather than completed without one.
    let per_part = record.checksum.filter(|a| *a != ChecksumAlgorithm::Md5);
    for (n, l) in listed.iter() {
        if usable.contains_key(n)
            || record.parts.contains_key(n)
            || l.etag.is_empty()
            || plan_size(n) != Some(l.size)
        {
            continue;
        }
        let checksum = match per_part {
            Some(algorithm) => match l.checksums.get(algorithm) {
                Some(value) => Some(super::digest::tagged(algorithm, value)),
                None => continue,
            },
            None => None,
        };
        usable.insert(
            n,
            RecordedPart {
                size: l.size,
                etag: l.etag.clone(),
                checksum,
            },
        );
    }
    usable
}

fn same_etag(a: &str, b: &str) -> bool {
    a.trim().trim_matches('"') == b.trim().trim_matches('"')
}

/// The upload's resume record, saved as parts are stored.
///
/// A record lists every stored part, so writing it after each one would cost O(parts²) over an
/// upload of 10,000 parts; it is written at most every [`JOURNAL_INTERVAL_MS`] instead (the
/// scheduler flushes it when that time has passed, on pause and when the upload fails). Losing
/// the last second of parts to a crash costs re-sending them, or nothing where the store lists
/// them with their ETags.
pub(crate) struct Journal {
    store: Option<Rc<dyn ResumeStore>>,
    record: RefCell<Option<ResumeRecord>>,
    clock: Rc<dyn Clock>,
    last_save_ms: Cell<f64>,
    dirty: Cell<bool>,
}

/// Least time between two writes of the resume record.
pub const JOURNAL_INTERVAL_MS: f64 = 1000.0;

impl Journal {
    pub(crate) fn new(
        store: Option<Rc<dyn ResumeStore>>,
        record: Option<ResumeRecord>,
        clock: Rc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            record: RefCell::new(record),
            clock,
            last_save_ms: Cell::new(f64::NEG_INFINITY),
            dirty: Cell::new(false),
        }
    }

    pub(crate) fn save(&self) {
        if let (Some(store), Some(record)) = (&self.store, &*self.record.borrow()) {
            store.save(record);
        }
        self.last_save_ms.set(self.clock.now_ms());
        self.dirty.set(false);
    }

    /// Writes the record if it changed since the last write.
    pub(crate) fn flush(&self) {
        if self.dirty.get() {
            self.save();
        }
    }

    /// Milliseconds until a pending change is due to be written, if one is pending.
    pub(crate) fn due_in(&self) -> Option<f64> {
        self.dirty
            .get()
            .then(|| self.last_save_ms.get() + JOURNAL_INTERVAL_MS - self.clock.now_ms())
    }

    pub(crate) fn stored(&self, part: u32, size: u64, etag: &str, checksum: Option<String>) {
        if let Some(record) = &mut *self.record.borrow_mut() {
            record.parts.insert(
                part,
                RecordedPart {
                    size,
                    etag: etag.to_owned(),
                    checksum,
                },
            );
            record.updated_ms = self.clock.now_ms();
            self.dirty.set(self.store.is_some());
        }
        if self.due_in().is_some_and(|ms| ms <= 0.0) {
            self.save();
        }
    }

    /// The parts the record lists as stored, with their ETags and checksums: those a resumed
    /// upload does not send again.
    pub(crate) fn stored_parts(&self) -> PartMap<(String, Option<String>)> {
        self.record
            .borrow()
            .as_ref()
            .map(|r| {
                r.parts
                    .iter()
                    .map(|(n, p)| (n, (p.etag.clone(), p.checksum.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The upload is finished or cancelled: nothing to resume.
    pub(crate) fn forget(&self) {
        if let (Some(store), Some(record)) = (&self.store, self.record.borrow_mut().take()) {
            store.remove(&record.fingerprint.key());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(parts: &[(u32, u64, &str)]) -> ResumeRecord {
        ResumeRecord {
            fingerprint: Fingerprint {
                name: "a".into(),
                size: 100,
                last_modified: 1,
                sample_hash: "h".into(),
            },
            upload_id: "u".into(),
            key: "k".into(),
            bucket: "b".into(),
            part_size: 10,
            parts: parts
                .iter()
                .map(|&(n, size, etag)| {
                    (
                        n,
                        RecordedPart {
                            size,
                            etag: etag.into(),
                            checksum: None,
                        },
                    )
                })
                .collect(),
            updated_ms: 0.0,
            checksum: None,
        }
    }

    fn listed(n: u32, etag: &str, size: u64) -> ListedPart {
        ListedPart {
            part_number: n,
            etag: etag.into(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn only_parts_the_store_holds_as_recorded_are_kept() {
        let r = record(&[
            (1, 10, "\"e1\""),
            (2, 10, "\"e2\""),
            (3, 10, "\"e3\""),
            (4, 10, "\"e4\""),
        ]);
        let l = [
            listed(1, "e1", 10),        // same ETag, other quoting
            listed(2, "\"other\"", 10), // replaced since
            listed(3, "\"e3\"", 9),     // wrong size
            listed(5, "\"e5\"", 10),    // finished as the page died
            listed(6, "", 10),          // no ETag to complete with
        ];
        let kept = reconcile(&r, &l, |_| Some(10));
        assert_eq!(kept.keys().collect::<Vec<_>>(), [1, 5]);
        assert_eq!(kept[5].etag, "\"e5\"");
    }

    /// With CRC or SHA-256 part checksums, completion needs each part's: a part the record lacks
    /// counts only when the store lists its checksum of the record's algorithm.
    #[test]
    fn unrecorded_parts_of_a_checksummed_upload_count_with_their_listed_checksum() {
        let r = ResumeRecord {
            checksum: Some(ChecksumAlgorithm::Crc32c),
            ..record(&[(1, 10, "\"e1\"")])
        };
        let with = |n: u32, crc32c: Option<&str>, sha256: Option<&str>| ListedPart {
            checksums: s3_direct_protocol::wire::PartChecksumFields {
                crc32c: crc32c.map(str::to_owned),
                sha256: sha256.map(str::to_owned),
                ..Default::default()
            },
            ..listed(n, &format!("\"e{n}\""), 10)
        };
        let l = [
            listed(1, "\"e1\"", 10),
            with(2, Some("AAAAAA=="), None), // finished as the page died, listed with it
            with(3, None, None),             // listed without a checksum
            with(4, None, Some("other algo=")), // only another algorithm's
            with(5, Some(""), None),         // an empty one
        ];
        let kept = reconcile(&r, &l, |_| Some(10));
        assert_eq!(kept.keys().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(kept[2].checksum.as_deref(), Some("crc32c:AAAAAA=="));
        assert_eq!(
            kept[1].checksum, None,
            "the record's own part is as recorded"
        );

        // MD5 is not completed per part: its unrecorded parts count on their ETag alone.
        let md5 = ResumeRecord {
            checksum: Some(ChecksumAlgorithm::Md5),
            ..record(&[])
        };
        let kept = reconcile(&md5, &[with(3, None, None)], |_| Some(10));
        assert_eq!(kept[3].checksum, None);
    }

    #[test]
    fn a_store_without_etags_is_trusted_on_size() {
        let r = record(&[(1, 10, "\"e1\""), (2, 10, "\"e2\"")]);
        let kept = reconcile(&r, &[listed(1, "", 10), listed(2, "", 3)], |_| Some(10));
        assert_eq!(kept.keys().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn samples_cover_start_middle_and_end() {
        assert_eq!(
            sample_ranges(10),
            vec![std::ops::Range { start: 0, end: 10 }]
        );
        let r = sample_ranges(1 << 30);
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].end, 1 << 30);
        assert_ne!(sample_hash(&[b"ab"]), sample_hash(&[b"ba"]));
        assert_ne!(sample_hash(&[b"a", b"b"]), sample_hash(&[b"ab"]));
        assert_eq!(sample_hash(&[b"ab"]).len(), 32);
    }
}
