//! URLs of the signing API under a configurable endpoint (default `/s3`).
//!
//! Plain string building, kept out of the browser code so it is tested natively. The paths and the
//! per-part query syntax are the protocol crate's ([`s3_direct_protocol::api`]), the ones the
//! server routes and parses. Upload ids and keys come from the store and may hold any character
//! (`/` in keys, `+` and `=` in ids), so every component is percent-encoded.

use std::fmt::Write;

use s3_direct_protocol::api;

use crate::engine::PartMap;

/// The signing API's routes under one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// The endpoint without a trailing slash: `/s3`, or `https://uploads.example.com/s3`.
    base: String,
}

impl Routes {
    pub fn new(endpoint: &str) -> Self {
        Self {
            base: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// `POST`: create a multipart upload.
    pub fn create(&self) -> String {
        format!("{}{}", self.base, api::CREATE)
    }

    /// `GET`: presigned URLs for `parts`, with `checksums` (`ALGO:BASE64` per part) and
    /// `lengths` (bytes per part) to sign in.
    pub fn sign_batch_with(
        &self,
        upload_id: &str,
        key: &str,
        parts: &[u32],
        checksums: &PartMap<String>,
        lengths: &PartMap<u64>,
    ) -> String {
        let mut url = self.sign_batch(upload_id, key, parts);
        let checksums = api::per_part(parts, |n| checksums.get(n));
        push_per_part(&mut url, "checksums", &checksums);
        push_per_part(
            &mut url,
            "lengths",
            &api::per_part(parts, |n| lengths.get(n)),
        );
        url
    }

    /// `GET`: presigned URLs for `parts`.
    pub fn sign_batch(&self, upload_id: &str, key: &str, parts: &[u32]) -> String {
        let mut numbers = String::with_capacity(parts.len() * 5);
        for (i, n) in parts.iter().enumerate() {
            if i > 0 {
                numbers.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(numbers, "{n}");
        }
        format!(
            "{}{}?key={}&partNumbers={numbers}",
            self.base,
            api::fill(api::SIGN_BATCH, &[&encode(upload_id)]),
            encode(key)
        )
    }

    /// `POST`: complete the upload.
    pub fn complete(&self, upload_id: &str, key: &str) -> String {
        format!(
            "{}{}?key={}",
            self.base,
            api::fill(api::COMPLETE, &[&encode(upload_id)]),
            encode(key)
        )
    }

    /// `POST`: a small file sent as one PUT is done; the server verifies it.
    pub fn complete_single(&self) -> String {
        format!("{}{}", self.base, api::PARAMS_COMPLETE)
    }

    /// `GET`: the parts the store holds.
    pub fn list_parts(&self, upload_id: &str, key: &str) -> String {
        self.abort(upload_id, key)
    }

    /// `GET`: a presigned single `PUT` for a small file (`method=PUT`: the server answers
    /// Companion clients a POST form). Metadata goes as `metadata[name]=value`, the form Uppy
    /// sends and Companion reads.
    pub fn single_put(&self, request: &crate::engine::SinglePutRequest) -> String {
        let mut url = format!(
            "{}{}?method=PUT&filename={}&type={}&size={}",
            self.base,
            api::PARAMS,
            encode(&request.filename),
            encode(&request.content_type),
            request.size
        );
        if let Some(path) = &request.relative_path {
            let _ = write!(url, "&relativePath={}", encode(path));
        }
        for (name, value) in &request.metadata {
            let _ = write!(
                url,
                "&{}={}",
                encode(&format!("metadata[{name}]")),
                encode(value)
            );
        }
        if let Some(sum) = &request.checksum {
            let _ = write!(url, "&checksum={}", encode(sum));
        }
        url
    }

    /// `DELETE`: abort the upload.
    pub fn abort(&self, upload_id: &str, key: &str) -> String {
        format!(
            "{}{}?key={}",
            self.base,
            api::fill(api::UPLOAD, &[&encode(upload_id)]),
            encode(key)
        )
    }
}

/// Appends `&{name}={list}` when the per-part `list` ([`api::per_part`]) is not empty.
fn push_per_part(url: &mut String, name: &str, list: &str) {
    if !list.is_empty() {
        // Writing to a String cannot fail.
        let _ = write!(url, "&{name}={}", encode(list));
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, like JavaScript's
/// `encodeURIComponent` minus its `!'()*` exceptions (which some servers treat as reserved).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            // By hand rather than `{:02X}`: one formatter less in the page.
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_signing_api() {
        let r = Routes::new("/s3/");
        assert_eq!(r.create(), "/s3/multipart");
        assert_eq!(
            r.sign_batch("up+1=", "uploads/a b.bin", &[1, 2, 3]),
            "/s3/multipart/up%2B1%3D/batch?key=uploads%2Fa%20b.bin&partNumbers=1,2,3"
        );
        assert_eq!(r.complete("id", "k"), "/s3/multipart/id/complete?key=k");
        assert_eq!(r.abort("id", "k/é"), "/s3/multipart/id?key=k%2F%C3%A9");
    }

    #[test]
    fn checksums_and_lengths_ride_in_the_batch_query() {
        let r = Routes::new("/s3");
        let sums = PartMap::from_iter([(2, "md5:AbC+/w==".to_string())]);
        let none = PartMap::new();
        assert_eq!(
            r.sign_batch_with("id", "k", &[1, 2], &sums, &none),
            "/s3/multipart/id/batch?key=k&partNumbers=1,2&checksums=2%3Amd5%3AAbC%2B%2Fw%3D%3D"
        );
        assert_eq!(
            r.sign_batch_with("id", "k", &[1], &sums, &none),
            "/s3/multipart/id/batch?key=k&partNumbers=1"
        );
        let lengths = PartMap::from_iter([(1, 8_388_608), (2, 17)]);
        assert_eq!(
            r.sign_batch_with("id", "k", &[1, 2], &sums, &lengths),
            "/s3/multipart/id/batch?key=k&partNumbers=1,2&checksums=2%3Amd5%3AAbC%2B%2Fw%3D%3D\
             &lengths=1%3A8388608%2C2%3A17"
        );
    }

    #[test]
    fn single_puts_carry_size_metadata_and_checksum() {
        let r = Routes::new("/s3");
        let request = crate::engine::SinglePutRequest {
            filename: "a b.txt".into(),
            relative_path: Some("d é/a b.txt".into()),
            content_type: "text/plain".into(),
            size: 42,
            metadata: [("origin".to_string(), "x&y".to_string())].into(),
            checksum: Some("md5:AbC+/w==".into()),
        };
        assert_eq!(
            r.single_put(&request),
            "/s3/params?method=PUT&filename=a%20b.txt&type=text%2Fplain&size=42\
             &relativePath=d%20%C3%A9%2Fa%20b.txt\
             &metadata%5Borigin%5D=x%26y&checksum=md5%3AAbC%2B%2Fw%3D%3D"
        );
    }

    #[test]
    fn absolute_endpoints_are_kept() {
        let r = Routes::new("https://up.example.test/s3");
        assert_eq!(r.create(), "https://up.example.test/s3/multipart");
    }

    #[test]
    fn unreserved_characters_pass_unchanged() {
        assert_eq!(encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(encode("?&#%"), "%3F%26%23%25");
    }
}
