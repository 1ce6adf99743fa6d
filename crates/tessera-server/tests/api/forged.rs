//! Forged and doctored access tokens: every one is a 401 JSON error, none is accepted.

use std::time::Duration;

use super::{spawn_app, spawn_app_with};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use tessera_core::access::{self, AccessClaims, Audience};
use tessera_core::ids::{SessionId, TokenId};
use tessera_core::keys::{KeySet, SigningKey, StoredSigningKey};
use tessera_core::Clock as _;
use tessera_test_support::{json_body, TestApp, Tokens};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The server's own signing keys, read from its data directory, to mint tokens it would accept
/// but for one doctored claim.
fn server_keys(app: &TestApp) -> KeySet {
    #[derive(serde::Deserialize)]
    struct KeyFile {
        signing: Vec<StoredSigningKey>,
    }
    let text = std::fs::read_to_string(app.data_dir().join("keys.json")).expect("keys.json");
    let file: KeyFile = serde_json::from_str(&text).expect("parse");
    KeySet::new(
        file.signing
            .iter()
            .map(|k| SigningKey::from_stored(k).expect("key"))
            .collect(),
    )
    .expect("keys")
}

fn claims_like(app: &TestApp, t: &Tokens) -> AccessClaims {
    let now = app.clock.now().as_secs();
    AccessClaims {
        iss: "http://tessera.test".into(),
        sub: t.user_id.clone(),
        aud: Audience::One("tessera".into()),
        exp: now + 300,
        iat: now,
        nbf: None,
        jti: TokenId::random(),
        sid: t.session_id.parse::<SessionId>().expect("sid"),
        client_id: "tessera".into(),
        scope: None,
        roles: vec!["admin".into()],
    }
}

async fn assert_refused(app: &TestApp, name: &str, token: &str) {
    let r = app.get_bearer("/v1/auth/verify", token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
    assert!(r.headers().contains_key("www-authenticate"), "{name}");
    assert_eq!(json_body(r).await["error"], "invalid_token", "{name}");
}

#[tokio::test]
async fn structurally_forged_tokens_are_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let (header, rest) = t.access.split_once('.').expect("jwt");
    let (payload, signature) = rest.split_once('.').expect("jwt");
    let kid = serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(header).expect("b64"))
        .expect("json")["kid"]
        .clone();
    let mut cases: Vec<(String, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(&json!({ "alg": alg, "typ": "at+jwt", "kid": kid }));
        cases.push((
            format!("alg {alg}, empty signature"),
            format!("{h}.{payload}."),
        ));
        cases.push((format!("alg {alg}, no signature"), format!("{h}.{payload}")));
    }
    cases.push(("stripped signature".into(), format!("{header}.{payload}.")));
    let mut altered = t.access.clone();
    altered.replace_range(t.access.len() - 4.., "AAAA");
    cases.push(("last four characters changed".into(), altered));
    cases.push((
        "unknown kid".into(),
        format!(
            "{}.{payload}.{signature}",
            b64(&json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "nope" }))
        ),
    ));
    cases.push((
        "kid path traversal".into(),
        format!(
            "{}.{payload}.{signature}",
            b64(&json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "../../dev/null" }))
        ),
    ));
    cases.push(("jku header".into(), format!("{}.{payload}.{signature}", b64(&json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:9/jwks" })))));
    cases.push((
        "typ JWT".into(),
        format!(
            "{}.{payload}.{signature}",
            b64(&json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid }))
        ),
    ));
    cases.push(("a refresh token as bearer".into(), t.refresh.clone()));
    cases.push(("garbage".into(), "not.a.token".into()));
    cases.push(("5 segments".into(), format!("{}.x.y", t.access)));
    cases.push((
        "8 KiB".into(),
        format!("{header}.{}.{signature}", "A".repeat(8192)),
    ));
    for (name, token) in cases {
        assert_refused(&app, &name, &token).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let jwks: Value = json_body(
        app.request(reqwest::Method::GET, "/.well-known/jwks.json")
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    let jwk = &jwks["keys"][0];
    let payload = t.access.split('.').nth(1).expect("payload");
    for secret in [
        jwk.to_string().into_bytes(),
        jwk["x"].as_str().expect("x").as_bytes().to_vec(),
    ] {
        let h = b64(&json!({ "alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"] }));
        let input = format!("{h}.{payload}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("hmac");
        mac.update(input.as_bytes());
        let token = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_refused(&app, "HS256 with the public key", &token).await;
    }
}

#[tokio::test]
async fn correctly_signed_tokens_with_a_wrong_claim_are_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let keys = server_keys(&app);
    let now = app.clock.now().as_secs();
    let base = claims_like(&app, &t);
    assert_eq!(
        app.verify(&access::mint(&keys, &base)).await,
        StatusCode::OK,
        "the control token is accepted"
    );
    let cases = [
        (
            "wrong audience",
            AccessClaims {
                aud: Audience::One("other".into()),
                ..base.clone()
            },
        ),
        (
            "wrong issuer",
            AccessClaims {
                iss: "http://evil.test".into(),
                ..base.clone()
            },
        ),
        (
            "issued in the future",
            AccessClaims {
                iat: now + 3600,
                exp: now + 3900,
                ..base.clone()
            },
        ),
        (
            "not yet valid",
            AccessClaims {
                nbf: Some(now + 3600),
                ..base.clone()
            },
        ),
    ];
    for (name, claims) in cases {
        assert_refused(&app, name, &access::mint(&keys, &claims)).await;
    }
    let expired = access::mint(
        &keys,
        &AccessClaims {
            iat: now - 900,
            exp: now - 600,
            ..base.clone()
        },
    );
    let r = app.get_bearer("/v1/auth/me", &expired).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(r).await["error"], "token_expired");
}

#[tokio::test]
async fn the_high_s_twin_of_a_logged_out_es256_token_stays_refused() {
    // ECDSA signatures are malleable: (r, n - s) verifies too. The denylist is keyed by jti, not
    // by the token text, so the twin of a logged-out token is refused as well (SECURITY.md A9).
    let app = spawn_app_with(|s| s.signing_alg = tessera_core::keys::SigningAlg::ES256).await;
    let t = app.user("alice").await;
    let (input, signature) = t.access.rsplit_once('.').expect("jwt");
    let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("b64"))
        .expect("sig");
    let (r, s) = sig.split_scalars();
    let twin_sig = p256::ecdsa::Signature::from_scalars(r, -*s).expect("twin");
    let twin = format!("{input}.{}", URL_SAFE_NO_PAD.encode(twin_sig.to_bytes()));
    assert_ne!(twin, t.access);
    assert_eq!(
        app.verify(&twin).await,
        StatusCode::OK,
        "the twin is a valid encoding of the same token"
    );
    assert_eq!(
        app.logout(&t.access, "session").await.status(),
        StatusCode::OK
    );
    assert_refused(&app, "high-S twin of a logged-out token", &twin).await;
}

#[tokio::test]
async fn a_denied_token_is_refused_until_it_expires() {
    let app = spawn_app().await;
    let keep = app.user("alice").await;
    let t = app.login("alice").await;
    app.logout(&t.access, "session").await;
    app.clock.advance(Duration::from_secs(200));
    assert_refused(&app, "denied, still within its lifetime", &t.access).await;
    assert_eq!(app.verify(&keep.access).await, StatusCode::OK);
}
