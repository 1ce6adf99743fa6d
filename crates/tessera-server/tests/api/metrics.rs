//! `/metrics`: after a scripted flow, the counters say exactly what happened; labels are route
//! templates, never raw paths; a separate listener when configured.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tessera_test_support::{TestApp, PASSWORD};

use super::{spawn_app, spawn_app_with};

/// Every sample of the exposition, by its full name with labels.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let r = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/openmetrics-text"));
    parse(&r.text().await.expect("text"))
}

fn parse(text: &str) -> HashMap<String, f64> {
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_match_a_scripted_flow() {
    let app = spawn_app().await;
    let t = app.user("alice").await; // sign-up and one login
    app.user("carol").await; // the one session still live at the end
    let other = app.login("alice").await;
    assert_eq!(
        app.login_raw("alice", "wrong password!").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_raw("nobody", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let next = app.refresh(&t.refresh).await; // rotated
    assert_eq!(app.refresh_raw(&t.refresh).await.status(), StatusCode::OK); // grace retry
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(
        app.refresh_raw(&t.refresh).await.status(), // reuse
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.refresh_raw(&next.refresh).await.status(),
        StatusCode::BAD_REQUEST
    ); // revoked
    assert_eq!(
        app.logout(&other.access, "session").await.status(),
        StatusCode::OK
    );
    app.sign_up("bob", PASSWORD).await;
    let r = app
        .admin(Method::POST, "/v1/admin/users/bob/block", None)
        .await;
    assert!(r.status().is_success());
    let r = app
        .request(Method::GET, "/no/such/path/9b1c")
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let m = scrape(&app).await;
    let expect = [
        ("tessera_logins_total{outcome=\"ok\"}", 3.0),
        ("tessera_logins_total{outcome=\"wrong_password\"}", 1.0),
        ("tessera_logins_total{outcome=\"unknown_user\"}", 1.0),
        ("tessera_refreshes_total{outcome=\"rotated\"}", 1.0),
        ("tessera_refreshes_total{outcome=\"grace_retry\"}", 1.0),
        ("tessera_refreshes_total{outcome=\"reused\"}", 1.0),
        ("tessera_refreshes_total{outcome=\"revoked\"}", 1.0),
        ("tessera_refresh_reuse_detections_total", 1.0),
        ("tessera_logouts_total{scope=\"session\"}", 1.0),
        ("tessera_admin_actions_total{action=\"user_blocked\"}", 1.0),
        (
            "tessera_http_requests_total{method=\"POST\",route=\"/v1/auth/login\",status=\"200\"}",
            3.0,
        ),
        (
            "tessera_http_requests_total{method=\"POST\",route=\"/v1/auth/login\",status=\"401\"}",
            2.0,
        ),
        (
            "tessera_http_requests_total{method=\"POST\",route=\"/v1/admin/users/{user}/block\",status=\"200\"}",
            1.0,
        ),
        (
            "tessera_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
            1.0,
        ),
        (
            "tessera_http_request_duration_seconds_count{route=\"/v1/auth/refresh\"}",
            4.0,
        ),
        ("tessera_password_hash_queue", 0.0),
        (
            "tessera_store_operation_duration_seconds_count{op=\"rotate\"}",
            1.0,
        ),
        // carol's; alice's reused session and her logged-out one are over
        ("tessera_live_sessions", 1.0),
    ];
    for (name, value) in expect {
        assert_eq!(get(&m, name), value, "{name}");
    }
    assert!(
        get(&m, "tessera_revocation_entries") >= 2.0,
        "two sessions revoked"
    );
    assert!(get(&m, "tessera_revocation_sync_age_seconds") < 3.0);
    assert!(
        !m.keys()
            .any(|k| k.contains("9b1c") || k.contains(&t.user_id)),
        "no raw path or user data in labels"
    );
}

#[tokio::test]
async fn store_failures_are_counted() {
    use sqlx::{Connection as _, Executor as _, SqliteConnection};
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let url = format!("sqlite://{}", app.data_dir().join("tessera.db").display());
    let mut holder = SqliteConnection::connect(&url).await.expect("connect");
    holder.execute("begin immediate").await.expect("lock");
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    holder.execute("rollback").await.expect("unlock");
    let m = scrape(&app).await;
    assert_eq!(
        get(&m, "tessera_refreshes_total{outcome=\"store_unavailable\"}"),
        1.0
    );
    assert_eq!(
        get(
            &m,
            "tessera_store_unavailable_total{route=\"/v1/auth/refresh\"}"
        ),
        1.0
    );
    assert!(
        m.iter()
            .any(|(k, v)| k.starts_with("tessera_store_errors_total{")
                && k.contains("kind=\"unavailable\"")
                && *v >= 1.0),
        "the failing store operation is counted"
    );
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let port = tessera_test_servers::free_port();
    let app = spawn_app_with(|s| s.metrics_listen = Some(([127, 0, 0, 1], port).into())).await;
    app.user("alice").await;
    let r = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("main");
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "not on the main listener"
    );
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics listener")
        .text()
        .await
        .expect("text");
    assert_eq!(
        get(&parse(&text), "tessera_logins_total{outcome=\"ok\"}"),
        1.0
    );
}
