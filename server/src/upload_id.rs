//! The `uploadId` a client holds: `{store upload id}.{upload token}`, joined here at create and
//! split here on every later call.
//!
//! Clients treat it as opaque and echo it in every path (Uppy does too). The token
//! ([`crate::token`]) is base64url, which has no `.`, so splitting at the *last* `.` is exact even
//! though store upload ids may contain dots. Before anything else reads it, an upload id must be
//! printable ASCII without spaces, as every store issues them, so it cannot smuggle anything into
//! a request.

use s3_direct_protocol::ErrorCode;

use crate::error::Error;
use crate::keys::truncate_for_message;

/// Longest upload id accepted (AWS's are about 150 characters, the token about 120).
const MAX_UPLOAD_ID_BYTES: usize = 1024;

/// The `uploadId` answered for the store's upload `store_id` sealed by `token`.
pub fn join(store_id: &str, token: &str) -> String {
    format!("{store_id}.{token}")
}

/// Checks an upload id handed back by a client: 1..=1024 printable ASCII characters, no spaces.
pub fn check(raw: &str) -> Result<&str, Error> {
    if !raw.is_empty()
        && raw.len() <= MAX_UPLOAD_ID_BYTES
        && raw.bytes().all(|b| b.is_ascii_graphic())
    {
        Ok(raw)
    } else {
        Err(Error::bad_request(
            ErrorCode::InvalidRequest,
            format!(
                "upload id {:?} is not one a store issues; pass the uploadId returned by create",
                truncate_for_message(raw)
            ),
        ))
    }
}

/// Splits a client's `uploadId` into the store's upload id and the token, at the last `.`.
pub fn split(raw: &str) -> Result<(&str, &str), Error> {
    match raw.rsplit_once('.') {
        Some((store_id, token)) if !store_id.is_empty() && !token.is_empty() => {
            Ok((store_id, token))
        }
        _ => Err(Error::Forbidden {
            code: ErrorCode::InvalidUploadToken,
            message: "uploadId carries no upload token; pass the uploadId returned by create \
                      unchanged"
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_printable_ascii() {
        assert!(check("2~abc_DEF.123-x").is_ok());
        for bad in ["", "a b", "a\0b", "ü", &"a".repeat(1025)] {
            assert_eq!(
                check(bad).unwrap_err().code(),
                ErrorCode::InvalidRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_ids_split_at_the_last_dot() {
        assert_eq!(split("a.b.c").unwrap(), ("a.b", "c"));
        for bad in ["abc", ".x", "x.", ""] {
            assert!(split(bad).is_err(), "{bad}");
        }
        assert_eq!(split(&join("a.b", "c")).unwrap(), ("a.b", "c"));
    }
}
