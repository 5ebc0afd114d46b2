//! Verifies an s3-direct receipt with `jsonwebtoken`, as an application's backend does.
//!
//! ```text
//! cargo run -p s3-direct-server --example verify-receipt -- JWKS_URL RECEIPT
//! ```
//!
//! JWKS_URL is the signing server's `/.well-known/jwks.json`. Prints the receipt's claims as JSON
//! and exits 0 when the receipt is valid; prints why and exits 1 when it is not. A backend fetches
//! the key set once and again when a receipt names a `kid` it does not know (a rotated key).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const ISSUER: &str = "s3-direct";
const TYPE: &str = "s3-direct-receipt+jwt";

/// The receipt's claims, once its signature, algorithm, type and issuer are checked.
fn verify(receipt: &str, keys: &JwkSet) -> Result<serde_json::Value, String> {
    let header = jsonwebtoken::decode_header(receipt).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some(TYPE) {
        return Err(format!("not a receipt: the header's typ is not {TYPE}"));
    }
    let kid = header.kid.ok_or("the receipt names no key (kid)")?;
    let jwk = keys
        .find(&kid)
        .ok_or_else(|| format!("no published key has kid {kid}"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["iss", "sub", "iat"]);
    // Receipts do not expire; judge freshness by `iat` where it matters.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(receipt, &key, &validation)
        .map_err(|e| e.to_string())?;
    Ok(data.claims)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [jwks_url, receipt] = args.as_slice() else {
        eprintln!("usage: verify-receipt JWKS_URL RECEIPT");
        return std::process::ExitCode::from(2);
    };
    // reqwest's rustls needs a crypto provider; this one is the AWS SDK's.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let keys = match fetch_keys(jwks_url).await {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("cannot read the keys at {jwks_url}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match verify(receipt, &keys) {
        // A backend then checks that `sub` is the user posting the form and that the receipt is
        // fresh, and records `key`, `size`, `etag` and `crc32c`.
        Ok(claims) => {
            println!("{claims}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("receipt refused: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn fetch_keys(url: &str) -> Result<JwkSet, reqwest::Error> {
    reqwest::get(url).await?.error_for_status()?.json().await
}
