//! Which `Host` a served app answers, over a real socket: an open server only its loopback
//! names on its own port (so a page cannot reach it by DNS rebinding), plus `--allowed-host`;
//! the other modes any host, or only the listed ones. Misdirected requests get a JSON 421 and
//! reach no store; the probes answer any host.

use std::net::SocketAddr;
use std::sync::Arc;

use s3_direct_protocol::ErrorCode;
use s3_direct_server::guard::AllowedHost;
use s3_direct_server::{AppState, FakeStore, JwtAuth, Settings};

use crate::common::test_secrets;
use crate::corpus::http::{RawReply, raw, serve};

const BODY: &str = r#"{"filename":"a.bin"}"#;

/// A create sent with `host` as its `Host` header.
async fn create_for(addr: SocketAddr, host: &str) -> RawReply {
    raw(
        addr,
        &format!(
            "POST /s3/multipart HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
            BODY.len()
        ),
    )
    .await
}

async fn get_for(addr: SocketAddr, path: &str, host: &str) -> RawReply {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
    )
    .await
}

fn hosts(list: &[&str]) -> Vec<AllowedHost> {
    list.iter()
        .map(|h| AllowedHost::parse(h).unwrap())
        .collect()
}

#[tokio::test]
async fn an_open_server_answers_only_its_loopback_names_on_its_port() {
    let store = Arc::new(FakeStore::new());
    let addr = serve(AppState::new(store.clone(), Settings::default())).await;
    let port = addr.port();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost:{}", port.wrapping_add(1)),
        "localhost".to_owned(),
        format!("127.0.0.2:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        let reply = create_for(addr, &host).await;
        reply.error(421, ErrorCode::MisdirectedRequest);
        assert!(
            reply.body.contains(&format!("localhost:{port}")),
            "{reply:?}"
        );
        get_for(addr, "/s3/params?filename=a.bin&size=1", &host)
            .await
            .error(421, ErrorCode::MisdirectedRequest);
        get_for(addr, "/metrics", &host)
            .await
            .error(421, ErrorCode::MisdirectedRequest);
        // The probes answer whoever asks.
        assert_eq!(get_for(addr, "/healthz", &host).await.status, 200);
        assert_eq!(get_for(addr, "/readyz", &host).await.status, 200);
    }
    assert!(
        !store
            .calls()
            .iter()
            .any(|c| !matches!(c, s3_direct_server::store::FakeCall::Ping)),
        "{:?}",
        store.calls()
    );
    // What browsers send for the page's own origin.
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(create_for(addr, &host).await.status, 200, "{host}");
    }
    // An ordinary client, too.
    let res = crate::common::http()
        .get(format!("http://{addr}/s3/params?filename=a.bin&size=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn allowed_hosts_extend_an_open_server() {
    let addr = serve(AppState::new(
        Arc::new(FakeStore::new()),
        Settings {
            allowed_hosts: hosts(&["dev.example", "proxy.example:8443"]),
            ..Settings::default()
        },
    ))
    .await;
    for host in ["dev.example:5173", "dev.example", "proxy.example:8443"] {
        assert_eq!(create_for(addr, host).await.status, 200, "{host}");
    }
    assert_eq!(
        create_for(addr, &format!("localhost:{}", addr.port()))
            .await
            .status,
        200
    );
    create_for(addr, "proxy.example:443")
        .await
        .error(421, ErrorCode::MisdirectedRequest);
}

#[tokio::test]
async fn other_modes_answer_any_host_unless_hosts_are_listed() {
    let jwt = |allowed: &[&str]| {
        AppState::with_auth(
            Arc::new(FakeStore::new()),
            Settings {
                allowed_hosts: hosts(allowed),
                ..Settings::default()
            },
            Arc::new(JwtAuth::hs256(b"jwt-secret-jwt-secret-jwt-secret!").unwrap()),
            test_secrets(),
        )
    };
    // No list: the Host is the proxy's business; the request goes on (to be refused as
    // unauthenticated here).
    let any = serve(jwt(&[])).await;
    create_for(any, "anything.example")
        .await
        .error(401, ErrorCode::Unauthenticated);
    let listed = serve(jwt(&["upload.example.com"])).await;
    create_for(listed, "upload.example.com:443")
        .await
        .error(401, ErrorCode::Unauthenticated);
    for host in ["anything.example", &format!("localhost:{}", listed.port())] {
        create_for(listed, host)
            .await
            .error(421, ErrorCode::MisdirectedRequest);
    }
    assert_eq!(
        get_for(listed, "/healthz", "10.0.0.9:8080").await.status,
        200
    );
}
