//! Rotation, the grace retry, reuse and expiry over HTTP.

use std::time::Duration;

use super::{spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;
use tessera_test_support::{json_body, TestApp};

async fn race(
    app: &TestApp,
    refresh_token: &str,
    n: usize,
) -> Vec<(StatusCode, String, serde_json::Value)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/v1/auth/refresh", app.base),
            refresh_token.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .expect("request");
            let outcome = r
                .headers()
                .get("tessera-refresh-outcome")
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            (
                r.status(),
                outcome,
                r.json::<serde_json::Value>().await.expect("json"),
            )
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn fifty_concurrent_refreshes_rotate_once_and_all_get_the_same_child() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let results = race(&app, &t.refresh, 50).await;
    assert!(
        results.iter().all(|(s, _, _)| *s == StatusCode::OK),
        "all inside the grace: {results:?}"
    );
    let rotated = results.iter().filter(|(_, o, _)| o == "rotated").count();
    let retried = results
        .iter()
        .filter(|(_, o, _)| o == "grace_retry")
        .count();
    assert_eq!((rotated, retried), (1, 49));
    let child = &results[0].2["refresh_token"];
    assert!(
        results
            .iter()
            .all(|(_, _, body)| &body["refresh_token"] == child),
        "one child, never two"
    );
    // The child is the live generation: it rotates.
    let next = app.refresh_raw(child.as_str().expect("child")).await;
    assert_eq!(next.headers()["tessera-refresh-outcome"], "rotated");
}

#[tokio::test]
async fn with_no_grace_a_race_has_one_winner_and_the_family_is_revoked() {
    let app = spawn_app_with(|s| s.refresh_grace = Duration::ZERO).await;
    let t = app.user("alice").await;
    let results = race(&app, &t.refresh, 50).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one 200");
    assert!(results
        .iter()
        .filter(|(s, _, _)| *s != StatusCode::OK)
        .all(|(s, _, b)| *s == StatusCode::BAD_REQUEST && b["error"] == "invalid_grant"));
    // Indistinguishable from a replay: the documented policy revokes the family.
    let child = winners[0].2["refresh_token"].as_str().expect("child");
    assert_eq!(
        app.refresh_raw(child).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.verify(winners[0].2["access_token"].as_str().expect("at"))
            .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_retry_inside_the_grace_returns_the_same_child() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let child = app.refresh(&t.refresh).await;
    app.clock.advance(Duration::from_secs(4));
    let retry = app.refresh_raw(&t.refresh).await;
    assert_eq!(retry.headers()["tessera-refresh-outcome"], "grace_retry");
    let body = json_body(retry).await;
    assert_eq!(
        body["refresh_token"],
        child.refresh.as_str(),
        "the SAME child token"
    );
    assert_ne!(
        body["access_token"],
        child.access.as_str(),
        "a fresh access token"
    );
    assert_eq!(
        app.verify(body["access_token"].as_str().expect("at")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_retry_after_the_child_was_used_is_reuse() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let child = app.refresh(&t.refresh).await;
    let grandchild = app.refresh(&child.refresh).await;
    let replay = json_body(app.refresh_raw(&t.refresh).await).await;
    assert_eq!(
        replay["reason"], "refresh_token_reused",
        "inside the grace, but the child was used"
    );
    assert_eq!(
        app.verify(&grandchild.access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn idle_expiry() {
    let app = spawn_app_with(|s| s.refresh_idle_ttl = Duration::from_secs(3600)).await;
    let t = app.user("alice").await;
    app.clock.advance(Duration::from_secs(3599));
    let alive = app.refresh(&t.refresh).await;
    app.clock.advance(Duration::from_secs(3600));
    let r = app.refresh_raw(&alive.refresh).await;
    assert_eq!(r.headers()["tessera-refresh-outcome"], "expired");
    assert_eq!(json_body(r).await["reason"], "session_expired");
}

#[tokio::test]
async fn absolute_expiry_is_not_extended_by_rotation() {
    let app = spawn_app_with(|s| {
        s.refresh_idle_ttl = Duration::from_secs(3600);
        s.refresh_max_age = Duration::from_secs(7200);
    })
    .await;
    let mut t = app.user("alice").await;
    for _ in 0..4 {
        app.clock.advance(Duration::from_secs(1700));
        t = app.refresh(&t.refresh).await; // 6800 s after login: still alive
    }
    app.clock.advance(Duration::from_secs(400)); // 7200 s
    let r = json_body(app.refresh_raw(&t.refresh).await).await;
    assert_eq!(r["reason"], "session_expired");
}

#[tokio::test]
async fn the_access_token_sent_along_must_match_and_is_replaced() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mismatch = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": alice.refresh, "access_token": bob.access }),
        )
        .await;
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(mismatch).await["error"], "invalid_request");
    assert_eq!(
        app.verify(&bob.access).await,
        StatusCode::OK,
        "nothing revoked"
    );

    // Seed 000's reissue: the expired access token and the refresh token together.
    app.clock.advance(Duration::from_secs(400));
    let ok = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": alice.refresh, "access_token": alice.access }),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let fresh = json_body(ok).await;
    assert_eq!(
        app.verify(fresh["access_token"].as_str().expect("at"))
            .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_rotation_denies_the_access_token_it_replaces() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let r = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": t.refresh, "access_token": t.access }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::UNAUTHORIZED,
        "the old pair is gone"
    );
}

#[tokio::test]
async fn garbage_refresh_tokens_revoke_nothing() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let (prefix, _) = t.refresh.rsplit_once('.').expect("tag");
    let forged = format!("{prefix}.{}", "A".repeat(43));
    for token in [
        forged.as_str(),
        "rt1.garbage",
        "",
        "x".repeat(5000).as_str(),
    ] {
        let r = app.refresh_raw(token).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{token:.40}");
        assert_eq!(json_body(r).await["reason"], "invalid_refresh_token");
    }
    assert_eq!(
        app.refresh_raw(&t.refresh).await.status(),
        StatusCode::OK,
        "the real session is untouched"
    );
}

#[tokio::test]
async fn a_session_refreshed_too_often_gets_429_and_loses_nothing() {
    let app = spawn_app_with(|s| s.refresh_rate_limit = 3).await;
    let t = app.user("alice").await;
    let other = app.login("alice").await;
    // Forged tokens naming the session use up none of its budget.
    let forged = format!("{}AAAA", &t.refresh[..t.refresh.len() - 4]);
    for _ in 0..5 {
        assert_eq!(
            app.refresh_raw(&forged).await.status(),
            reqwest::StatusCode::BAD_REQUEST
        );
    }
    let mut current = t.refresh.clone();
    for _ in 0..3 {
        current = app.refresh(&current).await.refresh;
    }
    let r = app.refresh_raw(&current).await;
    assert_eq!(r.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.headers()["retry-after"],
        "20",
        "3 a minute: one every 20 s"
    );
    assert_eq!(
        tessera_test_support::json_body(r).await["error"],
        "too_many_requests"
    );
    // Per session: another session of the same user is not limited.
    assert_eq!(
        app.refresh_raw(&other.refresh).await.status(),
        reqwest::StatusCode::OK
    );
    // Nothing was consumed or revoked: after the wait the same token rotates.
    app.clock.advance(std::time::Duration::from_secs(20));
    let r = app.refresh_raw(&current).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");
}
