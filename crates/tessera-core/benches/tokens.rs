//! Micro-benchmarks of the token engine: the CPU cost of each step of a request.
//!
//! `cargo bench -p tessera-core` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_core::access::{self, AccessClaims, AccessRules, Audience, Expiry};
use tessera_core::decision;
use tessera_core::ids::{SessionId, TokenId, UserId};
use tessera_core::keys::{KeySet, RefreshKey, RefreshKeys, SigningAlg, SigningKey};
use tessera_core::refresh::RefreshToken;
use tessera_core::revocation::RevocationSet;
use tessera_core::session::{ClientInfo, Session, SessionPolicy};
use tessera_core::validity::{self, Subject, UserStanding};
use tessera_core::verified::VerifiedCache;
use tessera_core::Timestamp;

fn claims(now: Timestamp) -> AccessClaims {
    AccessClaims {
        iss: "https://auth.example".into(),
        sub: UserId::random().to_string(),
        aud: Audience::One("api".into()),
        iat: now.as_secs(),
        exp: now.as_secs() + 300,
        nbf: None,
        jti: TokenId::random(),
        sid: SessionId::random(),
        client_id: "tessera".into(),
        scope: None,
        roles: vec![],
    }
}

fn rules() -> AccessRules {
    AccessRules {
        issuer: "https://auth.example".into(),
        audience: "api".into(),
        ttl: Duration::from_secs(300),
        leeway: Duration::from_secs(30),
    }
}

fn access_tokens(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_800_000_000);
    for alg in [
        SigningAlg::EdDSA,
        SigningAlg::ES256,
        SigningAlg::RS256,
        SigningAlg::HS256,
    ] {
        let keys = KeySet::new(vec![SigningKey::generate(alg, now).expect("key")]).expect("keys");
        let c0 = claims(now);
        let token = access::mint(&keys, &c0);
        c.bench_function(&format!("access/mint/{alg}"), |b| {
            b.iter(|| access::mint(&keys, black_box(&c0)))
        });
        c.bench_function(&format!("access/verify_fresh/{alg}"), |b| {
            b.iter(|| {
                access::verify(black_box(&token), &keys, &rules(), now, Expiry::Enforce)
                    .expect("valid")
            })
        });
    }
    // A repeated token: the remembered verification plus the revocation checks (what a bearer
    // request costs once its token was seen).
    let keys = KeySet::new(vec![
        SigningKey::generate(SigningAlg::EdDSA, now).expect("key")
    ])
    .expect("keys");
    let c0 = claims(now);
    let token = access::mint(&keys, &c0);
    let cache = VerifiedCache::new(100_000);
    cache.insert(&token, Arc::new(c0), now.as_secs(), 30);
    let set = RevocationSet::default();
    c.bench_function("access/verify_repeated", |b| {
        b.iter(|| {
            let claims = cache
                .get(black_box(&token), now.as_secs(), 30)
                .expect("cached");
            validity::check(Subject::Access(&claims), &set, now).expect("alive");
        })
    });
}

fn refresh_tokens(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_800_000_000);
    let key = RefreshKey::generate(now);
    let keys = RefreshKeys::new(vec![key.clone()]).expect("keys");
    let policy = SessionPolicy {
        idle_ttl: Duration::from_secs(14 * 86_400),
        max_age: Duration::from_secs(30 * 86_400),
        grace: Duration::from_secs(5),
    };
    let session = Session::new(
        UserId::random(),
        key.kid.clone(),
        ClientInfo::default(),
        &policy,
        now,
    );
    let text = RefreshToken::issue(&key, &session.id, 0, &session.nonce);
    c.bench_function("refresh/mint", |b| {
        b.iter(|| RefreshToken::issue(&key, black_box(&session.id), 0, &session.nonce))
    });
    c.bench_function("refresh/parse_and_check_tag", |b| {
        b.iter(|| {
            RefreshToken::parse(black_box(&text))
                .expect("parses")
                .tag_matches(&key, &session.nonce)
        })
    });
    let token = RefreshToken::parse(&text).expect("parses");
    let set = RevocationSet::default();
    let user = UserStanding::default();
    c.bench_function("refresh/decision", |b| {
        b.iter(|| {
            decision::decide(
                black_box(&token),
                Some(&session),
                &keys,
                &user,
                &set,
                policy.grace,
                now,
            )
            .expect("rotate")
        })
    });
}

criterion_group!(benches, access_tokens, refresh_tokens);
criterion_main!(benches);
