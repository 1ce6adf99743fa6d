//! `tessera keys rotate` beside a running embedded server (keys in `keys.json`): the new key is
//! published at once, signs after the delay, the old one verifies its tokens until they have
//! expired and then leaves the JWKS; the JWKS says how long it may be cached.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tessera_core::Clock as _;
use tessera_test_support::spawn_app;

fn kid(token: &str) -> String {
    tessera_test_support::header_of(token)["kid"]
        .as_str()
        .expect("kid")
        .to_owned()
}

async fn jwks(app: &tessera_test_support::TestApp) -> (Vec<String>, String) {
    let r = app
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks");
    let cache = r.headers()["cache-control"]
        .to_str()
        .expect("text")
        .to_owned();
    let doc: serde_json::Value = r.json().await.expect("json");
    let kids = doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    (kids, cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_publishes_first_signs_later_and_retires_the_old_key_after_its_tokens() {
    let app = spawn_app().await;
    let before = app.user("alice").await;
    let old = kid(&before.access);
    let (kids, cache) = jwks(&app).await;
    assert_eq!(kids, vec![old.clone()]);
    assert_eq!(cache, "public, max-age=300");

    let rotation = tessera_server::keyring::rotate_configured(
        &app.settings,
        Some(Duration::from_secs(20)),
        app.clock.now(),
    )
    .await
    .expect("rotate beside the running server");
    let new = rotation.signing_kid.clone();
    let started = Instant::now();
    while !jwks(&app).await.0.contains(&new) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "published within the reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        kid(&app.login("alice").await.access),
        old,
        "published, not signing"
    );
    let lines = tessera_server::keyring::describe_configured(&app.settings, app.clock.now())
        .await
        .expect("list");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&new) && l.contains("takes over at")),
        "{lines:?}"
    );

    app.clock.advance(Duration::from_secs(21));
    let started = Instant::now();
    let after = loop {
        let t = app.login("alice").await;
        if kid(&t.access) == new {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the new key signs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        app.verify(&before.access).await,
        StatusCode::OK,
        "old tokens live on"
    );
    assert_eq!(app.verify(&after.access).await, StatusCode::OK);
    // The session from before the rotation keeps its refresh key.
    app.refresh(&before.refresh).await;

    // Every token the old key signed has expired (5 min + 30 s leeway, plus 3 s for instances
    // that read the ring late): it leaves the JWKS.
    app.clock.advance(Duration::from_secs(334));
    let started = Instant::now();
    while jwks(&app).await.0.contains(&old) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the old key retires"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(jwks(&app).await.0.contains(&new));
    assert_eq!(
        app.verify(&before.access).await,
        StatusCode::UNAUTHORIZED,
        "a retired key's tokens are refused"
    );
    // A second rotation removes the retired key from the file for good.
    let second = tessera_server::keyring::rotate_configured(
        &app.settings,
        Some(Duration::ZERO),
        app.clock.now(),
    )
    .await
    .expect("rotate again");
    assert!(second.removed.contains(&old), "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_stops_verifying_at_once_even_for_remembered_tokens() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let leaked = kid(&t.access);
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "remembered from now on"
    );
    let refused = tessera_server::keyring::remove_configured(&app.settings, &leaked)
        .await
        .expect_err("the only signing key cannot go");
    assert!(refused.to_string().contains("rotate first"), "{refused}");
    tessera_server::keyring::rotate_configured(
        &app.settings,
        Some(Duration::ZERO),
        app.clock.now(),
    )
    .await
    .expect("rotate");
    tessera_server::keyring::remove_configured(&app.settings, &leaked)
        .await
        .expect("remove the leaked key");
    let started = Instant::now();
    while app.verify(&t.access).await == StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused within the reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!jwks(&app).await.0.contains(&leaked));
    let fresh = app.login("alice").await;
    assert_ne!(kid(&fresh.access), leaked);
    assert_eq!(app.verify(&fresh.access).await, StatusCode::OK);
}
