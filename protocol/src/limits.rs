//! The S3 multipart limits (AWS documentation; every S3-compatible store we support follows them or
//! is laxer, so the signing server enforces them itself instead of trusting the store).

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// One gibibyte.
pub const GIB: u64 = 1024 * MIB;
/// One tebibyte.
pub const TIB: u64 = 1024 * GIB;

/// Smallest part number S3 accepts.
pub const MIN_PART_NUMBER: u32 = 1;
/// Largest part number S3 accepts (and so the most parts one upload can have).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// Largest size of any part.
pub const MAX_PART_SIZE: u64 = 5 * GIB;
/// Largest object a multipart upload can produce.
pub const MAX_OBJECT_SIZE: u64 = 5 * TIB;
/// Largest object a single presigned PUT can produce.
pub const MAX_SINGLE_PUT_SIZE: u64 = 5 * GIB;
/// Longest object key S3 accepts, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Smallest part size the client picks unless told otherwise (see
/// [`default_part_size`](crate::plan::default_part_size)). Larger than S3's minimum: fewer
/// requests and better throughput per connection, still small enough that a retried part costs
/// little.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// Largest part size the client picks unless told otherwise, short of the 10,000-part limit: a
/// part lost to a failure or a closed page costs at most this much to send again.
pub const DEFAULT_MAX_PART_SIZE: u64 = 16 * MIB;
/// Parts the client's default part size aims for: a file is cut into about this many parts of
/// between [`DEFAULT_PART_SIZE`] and [`DEFAULT_MAX_PART_SIZE`].
pub const DEFAULT_PART_COUNT: u64 = 16;
/// Most part numbers one batch-sign request may ask for.
pub const MAX_BATCH_PARTS: usize = 1_000;
/// Part sizes chosen by the planner are rounded up to a multiple of this, so that plans are
/// readable and equal across clients.
pub const PART_SIZE_ALIGN: u64 = MIB;

/// Largest body `POST /multipart` (create) and `POST /params/complete` accept: a file name, a
/// type and at most 2 KB of metadata.
pub const MAX_CREATE_BODY_BYTES: usize = 64 * 1024;
/// Largest body `POST /multipart/{id}/complete` accepts: 10,000 parts with 128-character ETags
/// take about 1.7 MB.
pub const MAX_COMPLETE_BODY_BYTES: usize = 4 * 1024 * 1024;
