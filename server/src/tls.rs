//! TLS for the server's own HTTPS clients (the webhook, the notifier, doctor's probes, the
//! checksum probe): one rustls crypto provider for the process, and a reqwest builder that uses it.
//!
//! The AWS SDK links rustls with aws-lc-rs; reqwest is built without a provider of its own so that
//! no second crypto library is linked, and so needs the process default installed before a client
//! is built. Tests get a loopback HTTPS listener with a self-signed certificate ([`test_tls`]).

/// Installs rustls's aws-lc-rs crypto provider as the process default, once.
///
/// reqwest's rustls backend (built without a provider of its own, so that no second crypto
/// library is linked next to the AWS SDK's) panics when building a client unless a default is
/// installed. If one is already there (the AWS SDK installs the same one), it is kept.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only says another provider won the race; either is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A reqwest client builder with TLS ready: `https://` URLs are verified against the system's
/// root certificates.
pub fn http_client() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// A loopback HTTPS listener for tests, with a self-signed certificate made by the `openssl` CLI.
#[cfg(test)]
pub(crate) mod test_tls {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A running listener; it stops with the test's runtime.
    #[derive(Debug)]
    pub(crate) struct Server {
        /// `https://127.0.0.1:PORT/`.
        pub url: String,
        /// The self-signed certificate it presents (for 127.0.0.1), trusted by no one.
        pub cert: CertificateDer<'static>,
        _dir: tempfile::TempDir,
    }

    /// The body of every answer: a principal, for webhook tests.
    pub(crate) const BODY: &str = r#"{"id":"tls-client"}"#;

    /// Answers every request `200` with a `Date` header and [`BODY`].
    pub(crate) async fn start() -> Server {
        crate::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        // A server certificate (not a CA, which rustls refuses as a server's) for 127.0.0.1.
        let config_path = dir.path().join("req.cnf");
        std::fs::write(
            &config_path,
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = 127.0.0.1\n\
             [ext]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
             keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let out = std::process::Command::new("/usr/bin/openssl")
            .args(["req", "-x509", "-config"])
            .arg(&config_path)
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "1", "-keyout"])
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .expect("the openssl CLI makes the test certificate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
        let key = PrivateKeyDer::from_pem_file(&key_path).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let date = aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now())
                        .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
                        .unwrap();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ndate: {date}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
                        BODY.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Server {
            url,
            cert,
            _dir: dir,
        }
    }
}
