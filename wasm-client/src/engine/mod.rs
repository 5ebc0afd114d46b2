//! The upload engine: plain Rust that decides what to request and when.
//!
//! It never touches the browser. The signing server, the store, time and the network status are
//! reached through the traits in [`ports`] — implemented with `XMLHttpRequest`, `fetch`,
//! `setTimeout` and `navigator.onLine` in `crate::web`, and with scripted fakes and a manual clock
//! in the tests — so every policy here runs natively and deterministically under `cargo test`.

pub mod control;
pub mod digest;
pub mod error;
pub mod parts;
pub mod ports;
pub mod progress;
pub mod queue;
pub mod resume;
pub mod retry;
mod signing;
pub mod slots;
pub mod stall;
pub mod upload;

pub use control::{Control, RunState, Watch};
pub use error::{ApiCall, ApiError, ChecksumError, Error, FailureClass, PutError, SourceError};
pub use parts::{PartMap, PartSet};
pub use ports::{
    AlwaysOnline, Checksummer, Clock, CreatedUpload, Network, PartPut, PartSink, PartSource,
    SignedBatch, Signer, SinglePutRequest,
};
pub use progress::{PartProgress, Phase, Progress, ProgressCallback};
pub use queue::{
    FileCounts, ItemId, ItemState, ItemStatus, Launch, Listener, Queue, QueueEvent, QueueOptions,
    QueueProgress, Spawn,
};
pub use resume::{Fingerprint, RecordedPart, ResumeRecord, ResumeStore};
pub use retry::RetryPolicy;
pub use slots::{Slot, Slots};
pub use stall::{DEFAULT_STALL_TIMEOUT_MS, PartWatch, StallDetector, StallTimeout};
pub use upload::{
    ChecksumChoice, DEFAULT_SINGLE_PUT_THRESHOLD, DEFAULT_STREAM_PART_SIZE, Engine, FileInfo,
    ServerChecksum, UploadOptions, UploadResult, hash_deadline_ms,
};
