//! Two Tessera instances sharing one store and one master key (no key files copied), and a
//! service protected by the library following instance B: a token signed on A verifies on B and
//! in the library; a logout on A is refused by both; a key rotation made on A is published by B
//! before it signs, honoured by B and by the library, and sessions keep their refresh key.
//! Once on PostgreSQL, once on Redis.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tessera_core::Clock as _;
use tessera_test_support::{
    claims_of, header_of, spawn_app_on, Backend, TestApp, MASTER_KEY, VERIFIER_KEY,
};
use tessera_verify::{Config, Verifier, VerifyError};

fn shared(s: &mut tessera_server::Settings) {
    s.master_key = Some(MASTER_KEY.to_owned().into());
    // Verifiers cache the JWKS this long (the library's shortest); rotations wait longer.
    s.jwks_max_age = Duration::from_secs(5);
}

async fn postgres_pair() -> (TestApp, TestApp) {
    let a = spawn_app_on(Backend::Postgres, shared).await;
    let url = a.settings.database_url.clone();
    let b = a
        .peer(|s| {
            shared(s);
            s.database_url = url;
        })
        .await;
    (a, b)
}

async fn redis_pair() -> (TestApp, TestApp) {
    let a = spawn_app_on(Backend::Redis, shared).await;
    // Users (and with them the key ring) in A's database, sessions in one Redis.
    let users = format!("sqlite://{}", a.data_dir().join("tessera.db").display());
    let prefix = a.settings.redis_prefix.clone();
    let mut b = a
        .peer(|s| {
            shared(s);
            tessera_test_support::use_redis(s);
            s.database_url = Some(users);
            s.redis_prefix = prefix;
        })
        .await;
    b.cleanup_redis = false; // A owns the keys
    (a, b)
}

fn kid(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("kid").to_owned()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let doc: serde_json::Value = app
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(store: &str, a: TestApp, b: TestApp) {
    let verifier = Verifier::start(Config::new(
        b.base.clone(),
        VERIFIER_KEY,
        b.settings.issuer(),
        b.settings.audience.clone(),
    ))
    .expect("start");
    assert!(verifier.ready(Duration::from_secs(10)).await);

    // One key set: A's token verifies on B and in the library following B.
    let t = a.user("alice").await;
    assert_eq!(
        b.verify(&t.access).await,
        StatusCode::OK,
        "B verifies A's token"
    );
    verifier.verify(&t.access).await.expect("the library too");

    // A logout on A: refused by B and by the library.
    assert_eq!(
        a.logout(&t.access, "session").await.status(),
        StatusCode::OK
    );
    assert!(b
        .refused_within(&t.access, Duration::from_secs(2))
        .await
        .is_some());
    let started = Instant::now();
    while !matches!(
        verifier.verify(&t.access).await,
        Err(VerifyError::Revoked(_))
    ) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the library learns the logout"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The delay across instances: logouts on A, the library following B.
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = a.login("alice").await;
        verifier.verify(&t.access).await.expect("valid");
        assert_eq!(
            a.logout(&t.access, "session").await.status(),
            StatusCode::OK
        );
        let started = Instant::now();
        while !matches!(
            verifier.verify_local(&t.access),
            Err(VerifyError::Revoked(_))
        ) {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the library learns the logout"
            );
            tokio::task::yield_now().await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!(
        "{store}: logout on A → refusal by the library following B, {} logouts: p50 {:?}, max {:?}",
        times.len(),
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // A rotation made on A's side, taking over in 20 s.
    let before = a.login("alice").await;
    let old_kid = kid(&before.access);
    let rotation = tessera_server::keyring::rotate_configured(
        &a.settings,
        Some(Duration::from_secs(20)),
        a.clock.now(),
    )
    .await
    .expect("rotate");
    let new_kid = rotation.signing_kid.clone();
    for app in [&a, &b] {
        eventually(
            "the new key is published",
            Duration::from_secs(3),
            async || jwks_kids(app).await.contains(&new_kid),
        )
        .await;
    }
    assert_eq!(
        kid(&a.login("alice").await.access),
        old_kid,
        "not signing yet"
    );
    eventually(
        "the library holds the new key",
        Duration::from_secs(8),
        async || verifier.status().keys == 2,
    )
    .await;

    // Time passes on both instances: the new keys take over.
    for app in [&a, &b] {
        app.clock.advance(Duration::from_secs(21));
    }
    let mut after = None;
    eventually(
        "A signs with the new key",
        Duration::from_secs(3),
        async || {
            let t = a.login("alice").await;
            let signed_new = kid(&t.access) == new_kid;
            after = Some(t);
            signed_new
        },
    )
    .await;
    let after = after.expect("a token");
    assert_eq!(
        b.verify(&after.access).await,
        StatusCode::OK,
        "B verifies the new key's token"
    );
    verifier
        .verify(&after.access)
        .await
        .expect("the library verifies the new key's token");
    assert_eq!(
        b.verify(&before.access).await,
        StatusCode::OK,
        "old tokens stay valid"
    );
    verifier
        .verify(&before.access)
        .await
        .expect("old tokens stay valid in the library");

    // Sessions keep their refresh key: the old session and the new one both refresh on B
    // (once B, which reads the ring each second, signs with the new key too).
    eventually(
        "B signs with the new key",
        Duration::from_secs(3),
        async || kid(&b.login("alice").await.access) == new_kid,
    )
    .await;
    let refreshed = b.refresh(&before.refresh).await;
    assert_eq!(
        kid(&refreshed.access),
        new_kid,
        "B signs with the new key too"
    );
    b.refresh(&after.refresh).await;
    assert_eq!(
        claims_of(&refreshed.access)["sid"].as_str(),
        Some(before.session_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_share_keys_revocations_and_rotations() {
    let (a, b) = postgres_pair().await;
    scenario("PostgreSQL", a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_share_keys_revocations_and_rotations() {
    let (a, b) = redis_pair().await;
    scenario("Redis", a, b).await;
}
