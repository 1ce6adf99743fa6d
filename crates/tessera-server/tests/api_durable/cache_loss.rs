//! Tiered mode: losing Redis logs nobody out and revives nothing. Refresh loops run over many
//! sessions, concurrently, while the private Redis in front is flushed, restarted empty, and
//! killed for a while; the counters prove that every refresh of a live session succeeded and
//! that every revoked session and logged-out access token stayed dead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tessera_test_servers::RedisServer;
use tessera_test_support::{spawn_app_on, Backend, TestApp, Tokens};

/// Sessions refreshed in a loop, each by a task of its own.
const LIVE: usize = 8;
/// How long each phase (before, between and after the faults) lets the loops run.
const PHASE: Duration = Duration::from_millis(400);

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

/// Refreshes one chain, always with the newest token, until `stop`; every access token it gets
/// must verify. Returns the chain's newest tokens, the refreshes that succeeded, and every
/// answer that was not a success.
async fn refresh_loop(
    base: String,
    client: reqwest::Client,
    mut chain: Tokens,
    stop: Arc<AtomicBool>,
) -> (Tokens, usize, Vec<String>) {
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Acquire) {
        let r = client
            .post(format!("{base}/v1/auth/refresh"))
            .json(&json!({ "refresh_token": chain.refresh }))
            .send()
            .await
            .expect("request");
        if r.status() != StatusCode::OK {
            failed.push(format!(
                "{} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
            continue;
        }
        let body: serde_json::Value = r.json().await.expect("json");
        chain.refresh = body["refresh_token"].as_str().expect("rt").to_owned();
        chain.access = body["access_token"].as_str().expect("at").to_owned();
        ok += 1;
        let verify = client
            .get(format!("{base}/v1/auth/verify"))
            .bearer_auth(&chain.access)
            .send()
            .await
            .expect("verify");
        if verify.status() != StatusCode::OK {
            failed.push(format!("verify {}", verify.status()));
        }
    }
    (chain, ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_cache_logs_nobody_out_and_revives_nothing() {
    let mut redis = RedisServer::start(&[]);
    let app = spawn_app_on(Backend::Tiered, |s| {
        s.redis_url = redis.url();
        s.redis_timeout = Duration::from_millis(200);
        s.refresh_rate_limit = 0; // the chains refresh as fast as they can
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

    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = chains
        .into_iter()
        .map(|chain| {
            let (base, client, stop) = (app.base.clone(), app.client.clone(), stop.clone());
            tokio::spawn(refresh_loop(base, client, chain, stop))
        })
        .collect();
    tokio::time::sleep(PHASE).await;
    redis.cli(&["FLUSHALL"]).expect("flushall");
    tokio::time::sleep(PHASE).await;
    assert_dead(&app, &dead, "after FLUSHALL").await;
    redis.restart();
    tokio::time::sleep(PHASE).await;
    assert_dead(&app, &dead, "after a restart without persistence").await;
    redis.kill();
    tokio::time::sleep(PHASE).await;
    assert_dead(&app, &dead, "while Redis is down").await;
    redis.restart();
    tokio::time::sleep(PHASE * 3).await; // the cache is found back and used again
    stop.store(true, Ordering::Release);

    let (mut total, mut failed, mut newest) = (0, Vec::new(), Vec::new());
    for task in loops {
        let (chain, ok, errors) = task.await.expect("loop");
        total += ok;
        failed.extend(errors);
        newest.push(chain);
    }
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "no refresh or verify of a live session failed"
    );
    assert!(
        total >= LIVE * 5,
        "the loops ran throughout: {total} refreshes"
    );
    assert_dead(&app, &dead, "after the faults").await;

    // Every chain goes on, and a logout after the faults holds at once.
    for chain in &newest {
        app.refresh(&chain.refresh).await;
    }
    let last = app.login("live0").await;
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
