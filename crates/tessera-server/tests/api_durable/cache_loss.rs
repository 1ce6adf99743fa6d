//! Tiered mode: losing Redis logs nobody out and revives nothing. A refresh loop runs over many
//! sessions while the private Redis in front is flushed, restarted empty, and killed for a
//! while; the counters prove that every refresh of a live session succeeded and that every
//! revoked session and logged-out access token stayed dead.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tessera_test_servers::RedisServer;
use tessera_test_support::{spawn_app_on, Backend, TestApp, Tokens};

const LIVE: usize = 12;
const ROUNDS: usize = 24;

/// What happened to the cache before a round.
fn fault(round: usize, redis: &mut RedisServer) -> Option<&'static str> {
    match round {
        6 => {
            redis.cli(&["FLUSHALL"]).expect("flushall");
            Some("flushed")
        }
        11 => {
            redis.restart();
            Some("restarted empty")
        }
        16 => {
            redis.kill();
            Some("killed")
        }
        20 => {
            redis.restart();
            Some("back, empty")
        }
        _ => None,
    }
}

async fn assert_dead(app: &TestApp, dead: &[Tokens], when: &str) {
    for d in dead {
        let r = app.refresh_raw(&d.refresh).await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{when}: a revoked session refreshed"
        );
        assert_eq!(
            app.verify(&d.access).await,
            StatusCode::UNAUTHORIZED,
            "{when}: a logged-out access token came back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_cache_logs_nobody_out_and_revives_nothing() {
    let mut redis = RedisServer::start(&[]);
    let app = spawn_app_on(Backend::Tiered, |s| {
        s.redis_url = redis.url();
        s.redis_timeout = Duration::from_millis(200);
    })
    .await;

    let mut chains = Vec::new();
    for i in 0..LIVE {
        chains.push(app.user(&format!("live{i}")).await);
    }
    let mut dead = Vec::new();
    for i in 0..4 {
        let t = app.user(&format!("gone{i}")).await;
        let r = app.logout(&t.access, "session").await;
        assert_eq!(r.status(), StatusCode::OK);
        dead.push(t);
    }
    // One more, revoked by reuse detection: its parent is replayed after the grace window.
    let stolen = app.user("stolen").await;
    let child = app.refresh(&stolen.refresh).await;
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(
        app.refresh_raw(&stolen.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    dead.push(child);
    assert_dead(&app, &dead, "before any fault").await;

    let (mut ok, mut failed) = (0usize, Vec::new());
    for round in 0..ROUNDS {
        if let Some(what) = fault(round, &mut redis) {
            assert_dead(&app, &dead, what).await;
        }
        for chain in chains.iter_mut() {
            let r = app.refresh_raw(&chain.refresh).await;
            let status = r.status();
            if status == StatusCode::OK {
                let body: serde_json::Value = r.json().await.expect("json");
                chain.refresh = body["refresh_token"].as_str().expect("rt").to_owned();
                chain.access = body["access_token"].as_str().expect("at").to_owned();
                ok += 1;
            } else {
                failed.push((round, status, r.text().await.unwrap_or_default()));
            }
        }
        for chain in &chains {
            assert_eq!(
                app.verify(&chain.access).await,
                StatusCode::OK,
                "round {round}"
            );
        }
    }
    assert_eq!(failed, vec![], "no refresh of a live session failed");
    assert_eq!(ok, LIVE * ROUNDS);
    assert_dead(&app, &dead, "after the faults").await;

    // Log out one chain after the faults: honoured at once, also with the cache back.
    let last = &chains[0];
    let r = app
        .request(reqwest::Method::POST, "/v1/auth/logout")
        .bearer_auth(&last.access)
        .json(&json!({ "scope": "all" }))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.verify(&last.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh_raw(&last.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn readyz_reports_a_dead_cache_as_degraded_and_recovers() {
    let mut redis = RedisServer::start(&[]);
    let app = spawn_app_on(Backend::Tiered, |s| {
        s.redis_url = redis.url();
        s.redis_timeout = Duration::from_millis(200);
    })
    .await;
    let t = app.user("someone").await;
    redis.kill();
    // The next refresh finds Redis gone and is served from SQL.
    let t = app.refresh(&t.refresh).await;
    let ready: serde_json::Value = app
        .request(reqwest::Method::GET, "/readyz")
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "degraded", "{ready}");
    redis.restart();
    let mut status = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ready: serde_json::Value = app
            .request(reqwest::Method::GET, "/readyz")
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("json");
        status = ready["status"].as_str().unwrap_or_default().to_owned();
        if status == "ready" {
            break;
        }
    }
    assert_eq!(status, "ready", "the cache came back without traffic");
    app.refresh(&t.refresh).await;
}
