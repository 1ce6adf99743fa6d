//! Two Tessera instances on one Redis: revocations made on one reach the other at once (the
//! Redis channel), and a refresh race split over both has exactly one winner. The instances share
//! the users database and the keys, as a multi-instance deployment does.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_test_support::TestApp;

async fn pair() -> (TestApp, TestApp) {
    let a = crate::spawn_app().await;
    let users = format!("sqlite://{}", a.data_dir().join("tessera.db").display());
    let prefix = a.settings.redis_prefix.clone();
    let mut b = a
        .second_instance(|s| {
            tessera_test_support::use_redis(s);
            s.database_url = Some(users);
            s.redis_prefix = prefix;
        })
        .await;
    b.cleanup_redis = false; // A owns the keys
    (a, b)
}

#[tokio::test]
async fn a_logout_on_one_instance_is_refused_by_the_other_at_once() {
    let (a, b) = pair().await;
    let t = a.user("alice").await;
    assert_eq!(
        b.verify(&t.access).await,
        StatusCode::OK,
        "B verifies A's tokens"
    );
    assert_eq!(
        a.logout(&t.access, "session").await.status(),
        StatusCode::OK
    );
    let took = b.refused_within(&t.access, Duration::from_secs(2)).await;
    assert!(took.is_some(), "B learns the logout");
    assert_eq!(
        b.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_block_on_one_instance_holds_on_the_other() {
    let (a, b) = pair().await;
    let t = a.user("alice").await;
    let blocked = b
        .admin(Method::POST, "/v1/admin/users/alice/block", None)
        .await;
    assert_eq!(blocked.status(), StatusCode::OK);
    assert!(a
        .refused_within(&t.access, Duration::from_secs(2))
        .await
        .is_some());
    assert_eq!(
        a.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_refresh_race_over_two_instances_has_one_winner() {
    let (a, b) = pair().await;
    let t = a.user("alice").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (client, token) = (a.client.clone(), t.refresh.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/auth/refresh"))
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .expect("request");
            let outcome = r
                .headers()
                .get("tessera-refresh-outcome")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            let body: serde_json::Value = r.json().await.expect("json");
            (outcome, body["refresh_token"].as_str().map(str::to_owned))
        }));
    }
    let mut rotated = 0;
    let mut children = std::collections::HashSet::new();
    for task in tasks {
        let (outcome, child) = task.await.expect("task");
        rotated += usize::from(outcome.as_deref() == Some("rotated"));
        children.extend(child);
    }
    assert_eq!(rotated, 1, "exactly one rotation");
    assert_eq!(children.len(), 1, "one child, never two live successors");
}
