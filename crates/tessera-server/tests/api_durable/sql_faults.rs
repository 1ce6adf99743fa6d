//! The database going away: through a proxy that cuts every connection (down) or lets none
//! move (hung), Tessera answers 503 `temporarily_unavailable` within a bounded time, changes
//! nothing, and works again by itself when the database is back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tessera_test_servers::{mysql_url, pg_url, TcpProxy};
use tessera_test_support::{json_body, spawn_app_on, Backend, TestApp};

/// `host:port` of a database URL.
fn server_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split(['/', '?']).next().unwrap_or_default();
    host_port
        .parse()
        .expect("the test database URL names 127.0.0.1:<port>")
}

async fn through_proxy(backend: Backend, base: &str) -> (TestApp, TcpProxy) {
    let server = server_of(base);
    let proxy = TcpProxy::start(server);
    let port = proxy.port;
    let app = spawn_app_on(backend, |s| {
        let url = s.database_url.take().expect("a database URL");
        s.database_url = Some(url.replace(&server.to_string(), &format!("127.0.0.1:{port}")));
        s.database_timeout = Duration::from_secs(1);
    })
    .await;
    (app, proxy)
}

/// A refresh that must fail with 503 and `temporarily_unavailable`, quickly.
async fn refresh_is_unavailable(app: &TestApp, refresh: &str, what: &str) {
    let started = Instant::now();
    let r = app.refresh_raw(refresh).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(r.headers().contains_key("retry-after"), "{what}");
    let body = json_body(r).await;
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{what}: answered within a bound, not held"
    );
}

async fn down_and_hung_database(backend: Backend, base: &str) {
    let (app, proxy) = through_proxy(backend, base).await;
    let t = app.user("alice").await;

    proxy.refuse();
    refresh_is_unavailable(&app, &t.refresh, "database down").await;
    assert_eq!(
        app.login_raw("alice", tessera_test_support::PASSWORD)
            .await
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    proxy.restore();
    // Nothing was consumed: the same refresh token rotates now.
    let t = app.refresh(&t.refresh).await;

    proxy.blackhole();
    refresh_is_unavailable(&app, &t.refresh, "database hung").await;
    assert_eq!(
        app.logout(&t.access, "session").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a logout that cannot be stored is not acknowledged"
    );
    proxy.restore();
    let mut recovered = None;
    for _ in 0..50 {
        let r = app.refresh_raw(&t.refresh).await;
        if r.status() == StatusCode::OK {
            recovered = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "recovers by itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_or_hung_answers_503_and_recovers() {
    down_and_hung_database(Backend::Postgres, &pg_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_down_or_hung_answers_503_and_recovers() {
    down_and_hung_database(Backend::MySql, &mysql_url()).await;
}
