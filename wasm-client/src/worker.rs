//! The checksum worker's own module (`s3_direct_checksum.js` / `_bg.wasm`): the hashers alone.
//!
//! Built from this crate with the `worker` feature (wasm-client/build.sh), so the page's module
//! carries no hashing code: a page that uploads without checksums never downloads it, and one
//! that checksums loads it in the worker (`js/checksum-worker.js`, started by
//! `web/checksum.rs`). Not part of the documented API.

use s3_direct_protocol::wire::ChecksumAlgorithm;
use wasm_bindgen::prelude::*;

use crate::engine::digest::{self, Digest, base64};

fn algorithm(name: &str) -> Result<ChecksumAlgorithm, JsError> {
    ChecksumAlgorithm::parse(name)
        .ok_or_else(|| JsError::new(&format!("unknown checksum algorithm {name:?}")))
}

/// An incremental part checksum, fed the part chunk by chunk so that neither the worker nor WASM
/// memory ever holds a whole part.
#[wasm_bindgen(js_name = ChecksumStream, skip_typescript)]
#[derive(Debug)]
pub struct ChecksumStream(Digest);

#[wasm_bindgen(js_class = ChecksumStream)]
impl ChecksumStream {
    #[wasm_bindgen(constructor)]
    pub fn new(name: &str) -> Result<ChecksumStream, JsError> {
        algorithm(name).map(|a| Self(Digest::new(a)))
    }

    /// Adds the next bytes of the part (copied into WASM memory for the call, then freed).
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The part's checksum as base64; the hasher is consumed.
    pub fn finish(self) -> String {
        base64(&self.0.finish())
    }
}

/// S3's composite checksum (base64) of the parts' checksums `sums` (base64, in part order).
#[wasm_bindgen(js_name = compositeChecksum, skip_typescript)]
pub fn composite_checksum(name: &str, sums: Vec<String>) -> Result<String, JsError> {
    digest::composite(algorithm(name)?, &sums)
        .ok_or_else(|| JsError::new("a part checksum is not base64"))
}
