//! The signing API's bodies ([`s3_direct_protocol::wire`]) and the resume records as [`Json`]:
//! what the client sends written in the order and shape the protocol's `serde` derives give,
//! what it reads read as leniently as they are (unknown fields ignored, absent optional fields
//! defaulted; a `null` counts as absent).

use std::cell::Cell;
use std::collections::BTreeMap;

use s3_direct_protocol::wire::{
    ChecksumAlgorithm, CompleteRequest, CompleteResponse, CreateMultipartRequest,
    CreateMultipartResponse, ListedPart, ObjectCompleteRequest, PartChecksumFields, PartChecksums,
    SinglePutParams, WholeFileChecksum,
};

use super::Json;
use crate::engine::error::Quoted;
use crate::engine::{CreatedUpload, Fingerprint, PartMap, RecordedPart, ResumeRecord, SignedBatch};

/// A value read from JSON.
pub trait FromJson: Sized {
    fn from_json(value: &Json) -> Result<Self, String>;

    /// Parses `text` and reads the value from it.
    fn from_text(text: &str) -> Result<Self, String> {
        Self::from_json(&Json::parse(text)?)
    }
}

/// A value written as JSON.
pub trait ToJson {
    fn to_json(&self) -> Json;
}

/// The fields of one JSON object, read by name. A field of the wrong type, or absent where it is
/// required, reads as its type's default and is remembered: a reader builds its whole value,
/// then [`Fields::done`] gives it, or the first such error. (With a `?` per field, every reader
/// had a cleanup path per field that dropped what it had read so far.)
struct Fields<'a> {
    fields: &'a [(String, Json)],
    error: Cell<Option<String>>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Json) -> Self {
        let f = Self {
            fields: &[],
            error: Cell::new(None),
        };
        match value {
            Json::Object(fields) => Self { fields, ..f },
            _ => {
                f.fail("expected an object".to_owned());
                f
            }
        }
    }

    /// Remembers `error` unless an earlier one is.
    fn fail(&self, error: String) {
        let first = self.error.take().unwrap_or(error);
        self.error.set(Some(first));
    }

    /// `value`, or the first error met while reading it.
    fn done<T>(&self, value: T) -> Result<T, String> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    /// The field's value; an absent field and a `null` are the same.
    fn get(&self, name: &str) -> Option<&'a Json> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .filter(|v| **v != Json::Null)
    }

    fn read<T>(&self, name: &str, read: impl FnOnce(&'a Json) -> Result<T, String>) -> Option<T> {
        match read(self.get(name)?) {
            Ok(value) => Some(value),
            Err(e) => {
                self.fail(format!("field `{name}`: {e}"));
                None
            }
        }
    }

    fn required<T: Default>(&self, name: &str, value: Option<T>) -> T {
        value.unwrap_or_else(|| {
            self.fail(format!("missing field `{name}`"));
            T::default()
        })
    }

    fn opt_string(&self, name: &str) -> Option<String> {
        self.read(name, string)
    }

    fn string(&self, name: &str) -> String {
        self.required(name, self.opt_string(name))
    }

    fn opt_u64(&self, name: &str) -> Option<u64> {
        self.read(name, whole)
    }

    fn u64(&self, name: &str) -> u64 {
        self.required(name, self.opt_u64(name))
    }

    fn string_map(&self, name: &str) -> BTreeMap<String, String> {
        self.read(name, string_map).unwrap_or_default()
    }

    fn algorithm(&self, name: &str) -> Option<ChecksumAlgorithm> {
        self.read(name, |v| {
            let name = string(v)?;
            ChecksumAlgorithm::parse(&name)
                .ok_or_else(|| format!("unknown algorithm {}", Quoted(&name)))
        })
    }
}

fn object(value: &Json) -> Result<&[(String, Json)], String> {
    match value {
        Json::Object(fields) => Ok(fields),
        _ => Err("expected an object".to_owned()),
    }
}

fn string(value: &Json) -> Result<String, String> {
    match value {
        Json::String(s) => Ok(s.clone()),
        _ => Err("expected a string".to_owned()),
    }
}

fn whole(value: &Json) -> Result<u64, String> {
    match value {
        Json::Number(Some(n)) => Ok(*n),
        _ => Err("expected a whole number".to_owned()),
    }
}

fn part_number(name: &str) -> Result<u32, String> {
    name.parse()
        .map_err(|_| format!("{} is not a part number", Quoted(name)))
}

// The maps below are filled one field at a time: `collect` into a `BTreeMap` sorts first, a
// stable sort per map type; filling them so took 18,308 bytes (5,729 gzipped) off the page.

fn string_map(value: &Json) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (k, v) in object(value)? {
        map.insert(k.clone(), string(v).map_err(|e| format!("`{k}`: {e}"))?);
    }
    Ok(map)
}

/// An object keyed by part number (`{"1": ...}`), each value read by `read`.
fn part_map<T>(
    value: &Json,
    read: impl Fn(&Json) -> Result<T, String>,
) -> Result<PartMap<T>, String> {
    let mut map = PartMap::new();
    for (k, v) in object(value)? {
        let value = read(v).map_err(|e| format!("`{k}`: {e}"))?;
        map.insert(part_number(k)?, value);
    }
    Ok(map)
}

fn str_map(map: &BTreeMap<String, String>) -> Json {
    Json::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), v.as_str().into()))
            .collect(),
    )
}

/// Builds an object field by field, in order.
#[derive(Default)]
struct Object(Vec<(String, Json)>);

impl Object {
    fn field(mut self, name: &str, value: impl Into<Json>) -> Self {
        self.0.push((name.to_owned(), value.into()));
        self
    }

    /// The field only when there is a value, as `skip_serializing_if = "Option::is_none"`.
    fn some(self, name: &str, value: Option<impl Into<Json>>) -> Self {
        match value {
            Some(value) => self.field(name, value),
            None => self,
        }
    }
}

impl From<Object> for Json {
    fn from(object: Object) -> Self {
        Self::Object(object.0)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: &Json) -> Result<Self, String> {
        match value {
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(T::from_json(item).map_err(|e| format!("item {i}: {e}"))?);
                }
                Ok(out)
            }
            _ => Err("expected an array".to_owned()),
        }
    }
}

/// An answer whose content does not matter (`{}` to an abort, or no body).
impl FromJson for () {
    fn from_json(_: &Json) -> Result<Self, String> {
        Ok(())
    }
}

impl ToJson for CreateMultipartRequest {
    fn to_json(&self) -> Json {
        Object::default()
            .field("filename", self.filename.as_str())
            .some("relativePath", self.relative_path.as_deref())
            .field("type", self.content_type.as_str())
            .field("metadata", str_map(&self.metadata))
            .some("size", self.size)
            .some("partSize", self.part_size)
            .some("presignParts", self.presign_parts)
            .some(
                "checksum",
                self.checksum.map(|c| match c {
                    PartChecksums::Auto => "auto",
                    PartChecksums::Use(algorithm) => algorithm.as_str(),
                }),
            )
            .into()
    }
}

/// A [`CreateMultipartResponse`], its `presigned` batch read as a [`SignedBatch`].
impl FromJson for CreatedUpload {
    fn from_json(value: &Json) -> Result<Self, String> {
        let f = Fields::of(value);
        f.done(Self {
            upload: CreateMultipartResponse {
                key: f.string("key"),
                upload_id: f.string("uploadId"),
                bucket: f.string("bucket"),
                part_size: f.opt_u64("partSize"),
                checksum: f.algorithm("checksum"),
                presigned: None,
            },
            first_batch: f.read("presigned", SignedBatch::from_json),
        })
    }
}

/// A [`SignBatchResponse`](s3_direct_protocol::wire::SignBatchResponse).
impl FromJson for SignedBatch {
    fn from_json(value: &Json) -> Result<Self, String> {
        let f = Fields::of(value);
        f.done(Self {
            urls: f.required(
                "presignedUrls",
                f.read("presignedUrls", |v| part_map(v, string)),
            ),
            expires: f.opt_u64("expires"),
            headers: f.string_map("headers"),
            part_headers: f
                .read("partHeaders", |v| part_map(v, string_map))
                .unwrap_or_default(),
        })
    }
}

fn part_checksums(f: &Fields<'_>) -> PartChecksumFields {
    PartChecksumFields {
        crc32: f.opt_string("ChecksumCRC32"),
        crc32c: f.opt_string("ChecksumCRC32C"),
        sha256: f.opt_string("ChecksumSHA256"),
    }
}

impl FromJson for ListedPart {
    fn from_json(value: &Json) -> Result<Self, String> {
        let f = Fields::of(value);
        let part_number = f.u64("PartNumber");
        f.done(Self {
            part_number: u32::try_from(part_number).unwrap_or_else(|_| {
                f.fail(format!("{part_number} is not a part number"));
                0
            }),
            etag: f.opt_string("ETag").unwrap_or_default(),
            size: f.opt_u64("Size").unwrap_or_default(),
            checksums: part_checksums(&f),
        })
    }
}

impl ToJson for CompleteRequest {
    fn to_json(&self) -> Json {
        let parts = self
            .parts
            .iter()
            .map(|p| {
                p.checksums
                    .named()
                    .into_iter()
                    .fold(
                        Object::default()
                            .field("PartNumber", p.part_number)
                            .field("ETag", p.etag.as_str()),
                        |o, (name, value)| o.some(name, value.as_deref()),
                    )
                    .into()
            })
            .collect();
        Object::default().field("parts", Json::Array(parts)).into()
    }
}

impl FromJson for CompleteResponse {
    fn from_json(value: &Json) -> Result<Self, String> {
        let f = Fields::of(value);
        f.done(Self {
            location: f.string("location"),
            key: f.string("key"),
            bucket: f.string("bucket"),
            etag: f.opt_string("etag").unwrap_or_default(),
            size: f.opt_u64("size").unwrap_or_default(),
            checksum: f.opt_string("checksum"),
            whole_file: WholeFileChecksum {
                crc32c: f.opt_string("crc32c"),
                crc32: f.opt_string("crc32"),
            },
            receipt: f.opt_string("receipt"),
        })
    }
}

impl FromJson for SinglePutParams {
    fn from_json(value: &Json) -> Result<Self, String> {
        let f = Fields::of(value);
        f.done(Self {
            method: f.string("method"),
            url: f.string("url"),
            fields: f.string_map("fields"),
            headers: f.string_map("headers"),
            key: f.opt_string("key").unwrap_or_default(),
            bucket: f.opt_string("bucket").unwrap_or_default(),
            checksum: f.algorithm("checksum"),
            token: f.opt_string("token"),
        })
    }
}

impl ToJson for ObjectCompleteRequest {
    fn to_json(&self) -> Json {
        Object::default()
            .field("key", self.key.as_str())
            .field("token", self.token.as_str())
            .into()
    }
}

/// The `{error, message}` of an error answer, read leniently (a proxy in front of the server may
/// answer with anything): what is missing or not a string is empty.
pub fn error_body(text: &str) -> (String, String) {
    let value = Json::parse(text).unwrap_or(Json::Null);
    let f = Fields::of(&value);
    let text = |name| f.opt_string(name).unwrap_or_default();
    (text("error"), text("message"))
}

/// Resume records keep the field names of the `serde` derive they were first written with, so
/// records written by earlier versions of the client still load.
impl ToJson for ResumeRecord {
    fn to_json(&self) -> Json {
        let fp = &self.fingerprint;
        let parts = self
            .parts
            .iter()
            .map(|(n, p)| {
                let part = Object::default()
                    .field("size", p.size)
                    .field("etag", p.etag.as_str())
                    .some("checksum", p.checksum.as_deref());
                (n.to_string(), part.into())
            })
            .collect();
        Object::default()
            .field(
                "fingerprint",
                Object::default()
                    .field("name", fp.name.as_str())
                    .field("size", fp.size)
                    .field("last_modified", fp.last_modified)
                    .field("sample_hash", fp.sample_hash.as_str()),
            )
            .field("upload_id", self.upload_id.as_str())
            .field("key", self.key.as_str())
            .field("bucket", self.bucket.as_str())
            .field("part_size", self.part_size)
            .field("parts", Json::Object(parts))
            // Clock times are whole milliseconds (`Date.now()`).
            .field("updated_ms", self.updated_ms.max(0.0) as u64)
            .some("checksum", self.checksum.map(ChecksumAlgorithm::as_str))
            .into()
    }
}

impl FromJson for ResumeRecord {
    fn from_json(value: &Json) -> Result<Self, String> {
        let f = Fields::of(value);
        let fingerprint = f.read("fingerprint", |v| {
            let fp = Fields::of(v);
            fp.done(Fingerprint {
                name: fp.string("name"),
                size: fp.u64("size"),
                last_modified: fp.u64("last_modified"),
                sample_hash: fp.string("sample_hash"),
            })
        });
        f.done(Self {
            fingerprint: f.required("fingerprint", fingerprint),
            upload_id: f.string("upload_id"),
            key: f.string("key"),
            bucket: f.string("bucket"),
            part_size: f.u64("part_size"),
            parts: f.required(
                "parts",
                f.read("parts", |v| {
                    part_map(v, |p| {
                        let p = Fields::of(p);
                        p.done(RecordedPart {
                            size: p.u64("size"),
                            etag: p.string("etag"),
                            checksum: p.opt_string("checksum"),
                        })
                    })
                }),
            ),
            updated_ms: f.u64("updated_ms") as f64,
            checksum: f.algorithm("checksum"),
        })
    }
}

#[cfg(test)]
mod tests {
    use s3_direct_protocol::wire::{CompletedPart, SignBatchResponse};

    use super::*;
    use crate::engine::PartMap;

    fn same_as_serde<T: ToJson + serde::Serialize>(value: &T) {
        assert_eq!(
            value.to_json().to_text(),
            serde_json::to_string(value).unwrap()
        );
    }

    fn reads_as_serde<T: FromJson + serde::Serialize + PartialEq + std::fmt::Debug>(value: T) {
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(T::from_text(&text).unwrap(), value, "{text}");
    }

    /// A protocol type `P` read as the client's `T`, as `T::from` converts it.
    fn reads_as<T, P>(value: P)
    where
        T: FromJson + From<P> + PartialEq + std::fmt::Debug,
        P: serde::Serialize,
    {
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(T::from_text(&text).unwrap(), T::from(value), "{text}");
    }

    #[test]
    fn requests_are_written_as_serde_writes_them() {
        same_as_serde(&CreateMultipartRequest {
            filename: "a \"b\".bin".into(),
            relative_path: Some("d/é/a \"b\".bin".into()),
            content_type: "video/mp4".into(),
            metadata: BTreeMap::from([("k".into(), "v\n".into()), ("a".into(), "é".into())]),
            size: Some(10),
            part_size: Some(5_242_880),
            presign_parts: Some(12),
            checksum: Some(PartChecksums::Use(ChecksumAlgorithm::Crc32c)),
        });
        same_as_serde(&CreateMultipartRequest {
            checksum: Some(PartChecksums::Auto),
            ..Default::default()
        });
        same_as_serde(&CreateMultipartRequest::default());
        let mut sums = PartChecksumFields::default();
        sums.set(ChecksumAlgorithm::Sha256, "s".into());
        sums.set(ChecksumAlgorithm::Crc32, "c".into());
        same_as_serde(&CompleteRequest {
            parts: vec![
                CompletedPart {
                    part_number: 1,
                    etag: "\"e1\"".into(),
                    checksums: sums,
                },
                CompletedPart {
                    part_number: 2,
                    etag: "e2".into(),
                    ..Default::default()
                },
            ],
        });
        same_as_serde(&ObjectCompleteRequest {
            key: "k".into(),
            token: "t".into(),
        });
    }

    #[test]
    fn answers_are_read_as_serde_writes_them() {
        let batch = SignBatchResponse {
            presigned_urls: BTreeMap::from([(1, "u1".into()), (10, "u10".into())]),
            expires: Some(900),
            headers: BTreeMap::from([("x-amz-checksum-crc32c".into(), "AAAAAA==".into())]),
            part_headers: BTreeMap::from([(
                10,
                BTreeMap::from([("content-length".into(), "5".into())]),
            )]),
        };
        reads_as::<SignedBatch, _>(batch.clone());
        reads_as::<SignedBatch, _>(SignBatchResponse::default());
        reads_as::<CreatedUpload, _>(CreateMultipartResponse {
            key: "k".into(),
            upload_id: "u.t".into(),
            bucket: "b".into(),
            part_size: Some(8),
            checksum: Some(ChecksumAlgorithm::Sha256),
            presigned: Some(batch),
        });
        reads_as::<CreatedUpload, _>(CreateMultipartResponse::default());
        let mut listed = ListedPart {
            part_number: 3,
            etag: "\"e\"".into(),
            size: 5,
            ..Default::default()
        };
        listed.checksums.set(ChecksumAlgorithm::Crc32c, "c".into());
        reads_as_serde(vec![listed, ListedPart::default()]);
        reads_as_serde(CompleteResponse {
            location: "l".into(),
            key: "k".into(),
            bucket: "b".into(),
            etag: "e".into(),
            size: 7,
            checksum: Some("crc32c:AAAAAA==-2".into()),
            whole_file: WholeFileChecksum {
                crc32c: Some("c".into()),
                crc32: None,
            },
            receipt: Some("r".into()),
        });
        reads_as_serde(SinglePutParams {
            method: "POST".into(),
            url: "u".into(),
            fields: BTreeMap::from([("policy".into(), "p".into())]),
            headers: BTreeMap::new(),
            key: "k".into(),
            bucket: "b".into(),
            checksum: Some(ChecksumAlgorithm::Md5),
            token: Some("t".into()),
        });
    }

    #[test]
    fn answers_from_older_servers_and_unknown_fields_are_read() {
        let create = CreatedUpload::from_text(
            r#"{"key":"k","uploadId":"u","bucket":"b","partSize":null,"newField":[1,{}]}"#,
        )
        .unwrap();
        assert_eq!((create.upload.part_size, create.first_batch), (None, None));
        let listed = Vec::<ListedPart>::from_text(r#"[{"PartNumber":1}]"#).unwrap();
        assert_eq!((listed[0].etag.as_str(), listed[0].size), ("", 0));
    }

    #[test]
    fn answers_of_the_wrong_shape_say_what_is_wrong() {
        let missing = CreatedUpload::from_text(r#"{"key":"k","bucket":"b"}"#);
        assert_eq!(missing.unwrap_err(), "missing field `uploadId`");
        let wrong = SignedBatch::from_text(r#"{"presignedUrls":{"x":"u"}}"#);
        assert_eq!(
            wrong.unwrap_err(),
            "field `presignedUrls`: \"x\" is not a part number"
        );
        let item = Vec::<ListedPart>::from_text(r#"[{"PartNumber":1},{"PartNumber":"2"}]"#);
        assert_eq!(
            item.unwrap_err(),
            "item 1: field `PartNumber`: expected a whole number"
        );
        assert!(CompleteResponse::from_text("<html>").is_err());
        // The first field read that is wrong, in the order they are read.
        let first = CompleteResponse::from_text(r#"{"key":1,"bucket":[]}"#);
        assert_eq!(first.unwrap_err(), "missing field `location`");
        let first = CompleteResponse::from_text(r#"{"location":"l","key":1,"bucket":[]}"#);
        assert_eq!(first.unwrap_err(), "field `key`: expected a string");
        let nested = ResumeRecord::from_text(r#"{"fingerprint":{"size":1}}"#);
        assert_eq!(
            nested.unwrap_err(),
            "field `fingerprint`: missing field `name`"
        );
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        assert_eq!(
            error_body(r#"{"error":"busy","message":"later","x":1}"#),
            ("busy".into(), "later".into())
        );
        assert_eq!(error_body(r#"{"error":3}"#), (String::new(), String::new()));
        assert_eq!(error_body("<html>"), (String::new(), String::new()));
    }

    fn record() -> ResumeRecord {
        ResumeRecord {
            fingerprint: Fingerprint {
                name: "a \"b\".bin".into(),
                size: 100,
                last_modified: 1_765_000_000_123,
                sample_hash: "00ff".into(),
            },
            upload_id: "u.t".into(),
            key: "k".into(),
            bucket: "b".into(),
            part_size: 10,
            parts: PartMap::from_iter([
                (
                    1,
                    RecordedPart {
                        size: 10,
                        etag: "\"e1\"".into(),
                        checksum: Some("crc32c:AAAAAA==".into()),
                    },
                ),
                (
                    2,
                    RecordedPart {
                        size: 10,
                        etag: "\"e2\"".into(),
                        checksum: None,
                    },
                ),
            ]),
            updated_ms: 1_765_000_000_456.0,
            checksum: Some(ChecksumAlgorithm::Crc32c),
        }
    }

    #[test]
    fn resume_records_round_trip() {
        let record = record();
        let text = record.to_json().to_text();
        assert_eq!(ResumeRecord::from_text(&text).unwrap(), record);
        let plain = ResumeRecord {
            checksum: None,
            parts: PartMap::new(),
            ..record
        };
        assert_eq!(
            ResumeRecord::from_text(&plain.to_json().to_text()).unwrap(),
            plain
        );
    }

    #[test]
    fn resume_records_of_earlier_clients_still_load() {
        // As the serde derive wrote it: `updated_ms` an f64.
        let earlier = r#"{"fingerprint":{"name":"a \"b\".bin","size":100,"last_modified":1765000000123,"sample_hash":"00ff"},"upload_id":"u.t","key":"k","bucket":"b","part_size":10,"parts":{"1":{"size":10,"etag":"\"e1\"","checksum":"crc32c:AAAAAA=="},"2":{"size":10,"etag":"\"e2\""}},"updated_ms":1765000000456.0,"checksum":"crc32c"}"#;
        assert_eq!(ResumeRecord::from_text(earlier).unwrap(), record());
        assert_eq!(record().to_json().to_text(), earlier.replace(".0,", ","));
    }
}
