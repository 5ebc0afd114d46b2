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

/// Part size the client uses unless told otherwise. Larger than S3's minimum: fewer requests and
/// better throughput per connection, still small enough that a retried part costs little.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// Most part numbers one batch-sign request may ask for.
pub const MAX_BATCH_PARTS: usize = 1_000;
/// Part sizes chosen by the planner are rounded up to a multiple of this, so that plans are
/// readable and equal across clients.
pub const PART_SIZE_ALIGN: u64 = MIB;
