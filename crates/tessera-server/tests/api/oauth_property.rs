//! SECURITY C8: over a corpus of access tokens in every state (live, expired, revoked, denied,
//! forged, of a blocked user, signed by a key this Tessera does not hold) and random mutations and
//! splices of them, introspection answers `active: true` if and only if `/v1/auth/verify` answers
//! 200. (Refresh tokens are introspectable but are no bearer tokens, so they are outside the
//! property; `oauth.rs` covers them.)

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use tessera_test_support::json_body;

use super::oauth::{spawn_oauth_app, tampered, OAuthApp, BACKEND, SPA};
use super::spawn_app_with;

/// Random cases on top of the corpus itself.
const CASES: usize = 300;

/// The tokens, each named by the state it is in.
async fn corpus(o: &OAuthApp) -> Vec<(&'static str, String)> {
    let mut tokens = Vec::new();
    // Expired: minted, then the clock moves past their life and the leeway.
    let old = o.session("old", BACKEND).await;
    tokens.push(("expired", old.access));
    o.app.clock.advance(Duration::from_secs(300 + 31));

    let live = o.session("alice", BACKEND).await;
    tokens.push(("live", live.access.clone()));
    tokens.push(("live, public client", o.session("bob", SPA).await.access));
    let first_party = o.app.user("carol").await;
    tokens.push(("live, first party", first_party.access));

    let logged_out = o.login("alice", BACKEND).await;
    let r = o.app.logout(&logged_out.access, "session").await;
    assert_eq!(r.status(), StatusCode::OK);
    tokens.push(("session logged out", logged_out.access));

    let denied = o.login("alice", BACKEND).await;
    assert_eq!(o.revoke(&denied.access).await.status(), StatusCode::OK);
    tokens.push(("denied by /oauth/revoke", denied.access));

    let blocked = o.session("mallory", BACKEND).await;
    let r = o
        .app
        .admin(
            Method::POST,
            &format!("/v1/admin/users/{}/block", blocked.user_id),
            None,
        )
        .await;
    assert!(r.status().is_success());
    tokens.push(("user blocked", blocked.access));

    let cut_off = o.session("dave", BACKEND).await;
    let r = o
        .app
        .admin(
            Method::POST,
            &format!("/v1/admin/users/{}/logout", cut_off.user_id),
            None,
        )
        .await;
    assert!(r.status().is_success());
    tokens.push(("user force-logged-out", cut_off.access));

    // Same issuer and audience, keys of its own: a key this Tessera never held (or retired).
    let foreign = spawn_app_with(|_| {}).await;
    tokens.push(("foreign key", foreign.user("erin").await.access));

    tokens.push(("forged signature", tampered(&live.access)));
    // Not the caller's own (that one is introspectable, see above).
    tokens.push(("refresh token as bearer", first_party.refresh));
    tokens.push(("garbage", "not.a.token".into()));
    tokens
}

/// One random change to a token.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    /// Replace the character at (position mod length).
    Replace(usize, char),
    /// Keep the first 1 + (position mod length) characters.
    Truncate(usize),
    /// Header, payload and signature taken from three corpus tokens.
    Splice(usize, usize, usize),
    /// Extra trailing text.
    Append(&'static str),
}

fn mutation() -> impl Strategy<Value = (usize, Mutation)> {
    let alphabet: Vec<char> = "ABCDEFabcdef0189-_.=+/ ".chars().collect();
    (
        any::<usize>(),
        prop_oneof![
            Just(Mutation::None),
            (any::<usize>(), proptest::sample::select(alphabet))
                .prop_map(|(p, c)| Mutation::Replace(p, c)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<usize>(), any::<usize>())
                .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
            proptest::sample::select(vec![".", "=", ".e30", "..", "%00"])
                .prop_map(Mutation::Append),
        ],
    )
}

fn apply(corpus: &[(&'static str, String)], pick: usize, m: &Mutation) -> String {
    let base = &corpus[pick % corpus.len()].1;
    match m {
        Mutation::None => base.clone(),
        Mutation::Replace(p, c) => base
            .chars()
            .enumerate()
            .map(|(i, old)| if i == p % base.len() { *c } else { old })
            .collect(),
        // At least one character: an empty token is a missing parameter (400), not a token.
        Mutation::Truncate(p) => base.chars().take(1 + p % base.len()).collect(),
        Mutation::Splice(a, b, c) => {
            let part = |i: usize, n: usize| {
                corpus[i % corpus.len()]
                    .1
                    .split('.')
                    .nth(n)
                    .unwrap_or("")
                    .to_owned()
            };
            format!("{}.{}.{}", part(*a, 0), part(*b, 1), part(*c, 2))
        }
        Mutation::Append(tail) => format!("{base}{tail}"),
    }
}

async fn verify_says(o: &OAuthApp, token: &str) -> bool {
    let status = o.app.verify(token).await;
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "verify answers 200 or 401, not {status}, for {token:?}"
    );
    status == StatusCode::OK
}

async fn introspect_says(o: &OAuthApp, token: &str) -> bool {
    let r = o
        .backend("/oauth/introspect")
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), StatusCode::OK, "introspection of {token:?}");
    let v = json_body(r).await;
    match v["active"].as_bool() {
        Some(true) => true,
        Some(false) => {
            assert_eq!(v, serde_json::json!({ "active": false }), "nothing more");
            false
        }
        None => panic!("no active member: {v}"),
    }
}

#[tokio::test]
async fn c8_introspection_is_active_exactly_when_verify_accepts() {
    let o = spawn_oauth_app().await;
    let corpus = corpus(&o).await;
    // The corpus alone, with the expected verdicts.
    for (state, token) in &corpus {
        let verified = verify_says(&o, token).await;
        let expected = state.starts_with("live");
        assert_eq!(verified, expected, "verify of a {state} token");
        assert_eq!(
            introspect_says(&o, token).await,
            verified,
            "introspection of a {state} token"
        );
    }
    // Random mutations and splices: the two must agree on every one.
    let mut runner = TestRunner::default();
    let strategy = mutation();
    let mut accepted = 0;
    for _ in 0..CASES {
        let (pick, m) = strategy
            .new_tree(&mut runner)
            .expect("a generated case")
            .current();
        let token = apply(&corpus, pick, &m);
        let verified = verify_says(&o, &token).await;
        accepted += usize::from(verified);
        assert_eq!(
            introspect_says(&o, &token).await,
            verified,
            "{m:?} of corpus[{}]: {token:?}",
            pick % corpus.len()
        );
    }
    // The generator reaches both sides (unchanged or spliced-whole live tokens are accepted).
    assert!(accepted > 0, "no generated token was live");
}
