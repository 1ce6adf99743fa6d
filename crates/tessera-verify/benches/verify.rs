//! The library's verification cost, next to the bare check it wraps, against a real Tessera
//! (embedded store) started in-process: `cargo bench -p tessera-verify` (figures in
//! BENCHMARKS.md).
//!
//! - `verify_local/repeated`: a client's repeated token (remembered check + revocation look-ups);
//! - `verify_local/fresh`: a token never seen before (signature + claims + remembering it +
//!   look-ups), cycling through more tokens than the verifier remembers;
//! - `bare/eddsa`: `tessera_core::access::verify` with the same public key: signature and
//!   claims, nothing else.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use tessera_core::access::{self, AccessRules, Expiry};
use tessera_core::jwk::PublicKeySet;
use tessera_core::{Clock as _, SystemClock};
use tessera_test_support::{spawn_app_with, TestApp, VERIFIER_KEY};
use tessera_verify::{Config, Verifier};

const FRESH_TOKENS: usize = 512;

async fn tokens(app: &TestApp, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = app
            .admin(
                reqwest::Method::POST,
                "/v1/admin/sessions",
                Some(json!({ "user": "bench", "create": true })),
            )
            .await;
        let body: serde_json::Value = r.json().await.expect("json");
        out.push(body["access_token"].as_str().expect("token").to_owned());
    }
    out
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (app, verifier, remembered_few, tokens) = rt.block_on(async {
        let app = spawn_app_with(|s| s.max_sessions_per_user = 100_000).await;
        let config = |capacity| {
            let mut c = Config::new(
                app.base.clone(),
                VERIFIER_KEY,
                app.settings.issuer(),
                app.settings.audience.clone(),
            );
            c.cache_capacity = capacity;
            c
        };
        let verifier = Verifier::start(config(100_000)).expect("start");
        let few = Verifier::start(config(16)).expect("start");
        assert!(verifier.ready(Duration::from_secs(10)).await);
        assert!(few.ready(Duration::from_secs(10)).await);
        let tokens = tokens(&app, FRESH_TOKENS).await;
        (app, verifier, few, tokens)
    });
    let repeated = tokens[0].clone();
    verifier.verify_local(&repeated).expect("valid");

    c.bench_function("verify_local/repeated", |b| {
        b.iter(|| verifier.verify_local(black_box(&repeated)).expect("valid"))
    });
    let mut i = 0;
    c.bench_function("verify_local/fresh", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            remembered_few
                .verify_local(black_box(&tokens[i]))
                .expect("valid")
        })
    });
    let jwks: serde_json::Value = rt.block_on(async {
        app.request(reqwest::Method::GET, "/.well-known/jwks.json")
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json")
    });
    let keys = PublicKeySet::from_jwks(&jwks).expect("keys");
    let rules = AccessRules {
        issuer: app.settings.issuer(),
        audience: app.settings.audience.clone(),
        ttl: Duration::ZERO,
        leeway: Duration::from_secs(30),
    };
    let now = SystemClock.now();
    c.bench_function("bare/eddsa", |b| {
        b.iter(|| {
            access::verify(black_box(&repeated), &keys, &rules, now, Expiry::Enforce)
                .expect("valid")
        })
    });
    drop(verifier);
    drop(remembered_few);
    rt.block_on(async move { drop(app) });
}

criterion_group!(benches, verify);
criterion_main!(benches);
