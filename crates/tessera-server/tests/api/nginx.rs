//! nginx `auth_request` in front of an upstream, with the configuration shipped in
//! `deploy/nginx/tessera-auth.conf` (the file itself, not a copy): a real nginx from Debian's
//! packages, Tessera, and a small upstream that echoes the identity headers it receives.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::routing::any;
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::Value;
use tessera_test_servers::Nginx;
use tessera_test_support::spawn_app;

const CONFIG: &str = include_str!("../../../../deploy/nginx/tessera-auth.conf");

/// The upstream: answers with the `x-auth-*` and `authorization` headers it was given.
async fn upstream() -> (u16, tokio::task::JoinHandle<()>) {
    async fn echo(headers: HeaderMap) -> Json<BTreeMap<String, String>> {
        Json(
            headers
                .iter()
                .filter(|(name, _)| {
                    name.as_str().starts_with("x-auth-") || name.as_str() == "authorization"
                })
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
                .collect(),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = Router::new().fallback(any(echo));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("upstream");
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_through_live_tokens_only_with_the_verified_identity() {
    let app = spawn_app().await;
    let (upstream_port, upstream_task) = upstream().await;
    let nginx = Nginx::start(&format!(
        "upstream tessera {{ server {tessera}; keepalive 4; }}\n\
         upstream app {{ server 127.0.0.1:{upstream_port}; }}\n\
         server {{ listen 127.0.0.1:{{port}}; {CONFIG} }}",
        tessera = app.addr(),
    ));
    let url = format!("http://127.0.0.1:{}/orders/7", nginx.port);
    let http = reqwest::Client::new();

    // No token: 401 with the bare challenge, and the upstream is not reached.
    let none = http.get(&url).send().await.expect("request");
    assert_eq!(
        none.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        nginx.error_log()
    );
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .expect("text")
        .starts_with("Bearer"));

    // A bad token: 401 with Tessera's invalid_token challenge.
    let bad = http
        .get(&url)
        .bearer_auth("eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers()["www-authenticate"]
        .to_str()
        .expect("text")
        .contains("error=\"invalid_token\""));

    // A live token: the upstream sees the verified identity, not the one the client claims.
    let t = app.user("alice").await;
    let ok = http
        .post(&url)
        .bearer_auth(&t.access)
        .header("X-Auth-Sub", "root")
        .header("X-Auth-Roles", "admin")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), StatusCode::OK, "{}", nginx.error_log());
    let seen: Value = ok.json().await.expect("json");
    assert_eq!(seen["x-auth-sub"], t.user_id.as_str());
    assert_eq!(seen["x-auth-sid"], t.session_id.as_str());
    assert_eq!(seen["x-auth-client-id"], "tessera");
    assert!(
        seen.get("x-auth-roles").is_none(),
        "alice has no roles, so the client's claim is dropped: {seen}"
    );
    assert!(seen.get("authorization").is_none(), "{seen}");

    // Logged out: 401 at once.
    assert_eq!(
        app.logout(&t.access, "session").await.status(),
        StatusCode::OK
    );
    let gone = http
        .get(&url)
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("request");
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
    upstream_task.abort();
}
