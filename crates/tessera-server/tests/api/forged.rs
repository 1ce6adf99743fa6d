//! SECURITY.md section A, one test per case, over HTTP: forged and doctored access tokens are
//! each a 401 JSON error with `WWW-Authenticate` (400 or 431 for oversize), never accepted and
//! never a 5xx. `tessera-core`'s `jws` and `access` unit tests cover the same rules branch by
//! branch.
//!
//! Doctored claims are signed with the server's own key (an HS256 server, whose key the test
//! reads from the data directory), so the doctored part is the only reason for a refusal.

use std::time::{Duration, Instant};

use super::{spawn_app, spawn_app_with};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use tessera_core::keys::{SigningAlg, StoredSigningKey};
use tessera_core::Clock as _;
use tessera_test_support::{json_body, TestApp, Tokens};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The server's stored signing keys.
fn stored_keys(app: &TestApp) -> Vec<StoredSigningKey> {
    #[derive(serde::Deserialize)]
    struct KeyFile {
        signing: Vec<StoredSigningKey>,
    }
    let text = std::fs::read_to_string(app.data_dir().join("keys.json")).expect("keys.json");
    serde_json::from_str::<KeyFile>(&text)
        .expect("parse")
        .signing
}

/// An HS256 server, a user's tokens, and the server's HMAC key.
async fn hs256_app() -> (TestApp, Tokens, Vec<u8>) {
    let app = spawn_app_with(|s| s.signing_alg = SigningAlg::HS256).await;
    let t = app.user("alice").await;
    let key = stored_keys(&app)
        .into_iter()
        .find(|k| k.alg == SigningAlg::HS256)
        .expect("HS256 key");
    (app, t, STANDARD.decode(key.private).expect("key bytes"))
}

/// `header.payload.signature` with an HS256 MAC under `key`, the header and payload given as
/// raw text (so duplicates, odd types and odd encodings can be sent).
fn sign_raw(key: &[u8], header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The header of a token (decoded).
fn header_of(token: &str) -> Value {
    let h = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json")
}

/// The claims of `t` as the server would issue them, as a JSON object to doctor.
fn claims_of(app: &TestApp, t: &Tokens) -> Value {
    let now = app.clock.now().as_secs();
    json!({
        "iss": "http://tessera.test", "sub": t.user_id, "aud": "tessera",
        "exp": now + 300, "iat": now, "jti": "AAAAAAAAAAAAAAAAAAAAAA",
        "sid": t.session_id, "client_id": "tessera",
    })
}

async fn assert_refused(app: &TestApp, name: &str, token: &str) {
    let started = Instant::now();
    let r = app.get_bearer("/v1/auth/verify", token).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{name}: answered in bounded time"
    );
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
    assert!(r.headers().contains_key("www-authenticate"), "{name}");
    let code = json_body(r).await["error"].clone();
    assert!(
        code == "invalid_token" || code == "token_expired",
        "{name}: {code}"
    );
}

async fn assert_all_refused(app: &TestApp, cases: Vec<(String, String)>) {
    for (name, token) in cases {
        assert_refused(app, &name, &token).await;
    }
}

#[tokio::test]
async fn a1_alg_none_in_every_spelling_is_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let payload = t.access.split('.').nth(1).expect("payload");
    let kid = header_of(&t.access)["kid"].clone();
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(&json!({ "alg": alg, "typ": "at+jwt", "kid": kid }));
        cases.push((format!("{alg}, empty signature"), format!("{h}.{payload}.")));
        cases.push((format!("{alg}, no signature"), format!("{h}.{payload}")));
    }
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a2_stripped_truncated_or_altered_signatures_are_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let (input, signature) = t.access.rsplit_once('.').expect("jwt");
    let mut altered = t.access.clone();
    let tail = if t.access.ends_with("AAAA") {
        "BBBB"
    } else {
        "AAAA"
    };
    altered.replace_range(t.access.len() - 4.., tail);
    assert_all_refused(
        &app,
        vec![
            ("stripped".into(), format!("{input}.")),
            ("two segments".into(), input.to_owned()),
            (
                "truncated".into(),
                format!("{input}.{}", &signature[..signature.len() / 2]),
            ),
            ("last four characters changed".into(), altered),
        ],
    )
    .await;
}

#[tokio::test]
async fn a3_hs256_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let jwks = json_body(
        app.request(Method::GET, "/.well-known/jwks.json")
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    let jwk = &jwks["keys"][0];
    let payload = t.access.split('.').nth(1).expect("payload");
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("utf8");
    let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"] }).to_string();
    let mut cases = Vec::new();
    for (name, secret) in [
        ("the JWK JSON", jwk.to_string().into_bytes()),
        (
            "the raw public key",
            jwk["x"].as_str().expect("x").as_bytes().to_vec(),
        ),
    ] {
        cases.push((name.to_owned(), sign_raw(&secret, &header, &payload)));
    }
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a4_an_algorithm_swap_on_our_key_is_refused() {
    let app = spawn_app_with(|s| s.signing_alg = SigningAlg::ES256).await;
    let t = app.user("alice").await;
    let (_, rest) = t.access.split_once('.').expect("jwt");
    let kid = header_of(&t.access)["kid"].clone();
    let cases = ["ES384", "ES512", "PS256", "RS256", "EdDSA", "HS256"]
        .into_iter()
        .map(|alg| {
            let h = b64(&json!({ "alg": alg, "typ": "at+jwt", "kid": kid }));
            (alg.to_owned(), format!("{h}.{rest}"))
        })
        .collect();
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a5_header_supplied_keys_are_refused_and_never_fetched() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    // A listener the token points at: it must never see a connection.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("trap");
    trap.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/jwks.json", trap.local_addr().expect("addr"));
    let (_, rest) = t.access.split_once('.').expect("jwt");
    let kid = header_of(&t.access)["kid"].clone();
    let with = |extra: Value| {
        let mut h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
        for (k, v) in extra.as_object().expect("object") {
            h[k] = v.clone();
        }
        format!("{}.{rest}", b64(&h))
    };
    let cases = vec![
        (
            "jwk".to_owned(),
            with(json!({ "jwk": { "kty": "OKP", "crv": "Ed25519", "x": "AAAA" } })),
        ),
        ("jku".to_owned(), with(json!({ "jku": url }))),
        ("x5u".to_owned(), with(json!({ "x5u": url }))),
        (
            "x5c".to_owned(),
            with(json!({ "x5c": ["MIIBszCCAVmgAwIBAgIU"] })),
        ),
    ];
    assert_all_refused(&app, cases).await;
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no outbound fetch"
    );
}

#[tokio::test]
async fn a6_kid_abuse_is_refused_in_bounded_time() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let (_, rest) = t.access.split_once('.').expect("jwt");
    let cases = [
        "unknown".to_owned(),
        String::new(),
        "../../dev/null".into(),
        "x' UNION SELECT '1';--".into(),
        "|sleep 10".into(),
        "k".repeat(10 * 1024),
    ]
    .into_iter()
    .map(|kid| {
        let h = b64(&json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid }));
        (format!("kid {:.20}", kid), format!("{h}.{rest}"))
    })
    .collect();
    assert_all_refused(&app, cases).await;
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "no side effect"
    );
}

#[tokio::test]
async fn a7_mac_keys_are_random_and_long() {
    let (app, t, key) = hs256_app().await;
    assert!(
        key.len() >= 32,
        "at least the hash output: {} bytes",
        key.len()
    );
    let second = spawn_app_with(|s| s.signing_alg = SigningAlg::HS256).await;
    let other = stored_keys(&second)
        .into_iter()
        .find(|k| k.alg == SigningAlg::HS256)
        .expect("key");
    assert_ne!(
        STANDARD.decode(other.private).expect("b64"),
        key,
        "random per deployment"
    );
    // Common secrets (jwt_tool's list starts with these) do not verify.
    let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header_of(&t.access)["kid"] });
    let claims = claims_of(&app, &t).to_string();
    let cases = [
        "secret",
        "password",
        "",
        "tessera",
        "your-256-bit-secret",
        "changeme",
    ]
    .into_iter()
    .map(|s| {
        (
            format!("secret {s:?}"),
            sign_raw(s.as_bytes(), &header.to_string(), &claims),
        )
    })
    .collect();
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a8_invalid_ecdsa_values_are_refused() {
    let app = spawn_app_with(|s| s.signing_alg = SigningAlg::ES256).await;
    let t = app.user("alice").await;
    let (input, signature) = t.access.rsplit_once('.').expect("jwt");
    let raw = URL_SAFE_NO_PAD.decode(signature).expect("b64");
    let (r, s) = raw.split_at(32);
    // A DER encoding of (r, s): SEQUENCE { INTEGER r, INTEGER s }, each with a leading zero.
    let int = |v: &[u8]| [&[0x02, 33, 0][..], v].concat();
    let body = [int(r), int(s)].concat();
    let der = [&[0x30, body.len() as u8][..], &body].concat();
    let n_and_more = [0xFFu8; 32];
    let cases = vec![
        ("r = s = 0".to_owned(), vec![0u8; 64]),
        ("r ≥ n".to_owned(), [&n_and_more[..], s].concat()),
        ("s ≥ n".to_owned(), [r, &n_and_more[..]].concat()),
        ("DER instead of R‖S".to_owned(), der),
        ("63 bytes".to_owned(), raw[..63].to_vec()),
        ("65 bytes".to_owned(), [&raw[..], &[0]].concat()),
    ]
    .into_iter()
    .map(|(name, sig)| (name, format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))))
    .collect();
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a9_the_high_s_twin_of_a_logged_out_token_stays_refused() {
    // ECDSA signatures are malleable: (r, n - s) verifies too. The denylist is keyed by jti, not
    // by the token text, so the twin of a logged-out token is refused as well.
    let app = spawn_app_with(|s| s.signing_alg = SigningAlg::ES256).await;
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

/// A named change to a token's claims.
type Edit = (&'static str, Box<dyn Fn(&mut Value)>);

/// Claims doctored one at a time, signed with the server's key.
async fn doctored(edits: Vec<Edit>) {
    let (app, t, key) = hs256_app().await;
    let header =
        json!({ "alg": "HS256", "typ": "at+jwt", "kid": header_of(&t.access)["kid"] }).to_string();
    let base = claims_of(&app, &t);
    assert_eq!(
        app.verify(&sign_raw(&key, &header, &base.to_string()))
            .await,
        StatusCode::OK,
        "the undoctored control token is accepted"
    );
    let cases = edits
        .into_iter()
        .map(|(name, edit)| {
            let mut claims = base.clone();
            edit(&mut claims);
            (
                name.to_owned(),
                sign_raw(&key, &header, &claims.to_string()),
            )
        })
        .collect();
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a10_time_claims_are_enforced_and_odd_values_refused() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    doctored(vec![
        (
            "exp past beyond the leeway",
            Box::new(move |c| c["exp"] = (now - 60).into()),
        ),
        (
            "nbf in the future",
            Box::new(move |c| c["nbf"] = (now + 3600).into()),
        ),
        (
            "iat far in the future",
            Box::new(move |c| c["iat"] = (now + 3600).into()),
        ),
        (
            "exp missing",
            Box::new(|c| {
                c.as_object_mut().expect("obj").remove("exp");
            }),
        ),
        (
            "exp a string",
            Box::new(move |c| c["exp"] = (now + 300).to_string().into()),
        ),
        (
            "exp a float",
            Box::new(move |c| c["exp"] = json!(now as f64 + 300.5)),
        ),
        ("exp negative", Box::new(|c| c["exp"] = (-1).into())),
        ("exp 1e300", Box::new(|c| c["exp"] = json!(1e300))),
    ])
    .await;
}

#[tokio::test]
async fn a11_issuer_and_audience_are_checked() {
    doctored(vec![
        (
            "wrong iss",
            Box::new(|c| c["iss"] = "http://evil.test".into()),
        ),
        (
            "aud missing",
            Box::new(|c| {
                c.as_object_mut().expect("obj").remove("aud");
            }),
        ),
        (
            "aud of another service",
            Box::new(|c| c["aud"] = "billing".into()),
        ),
        (
            "aud array without ours",
            Box::new(|c| c["aud"] = json!(["billing", "crm"])),
        ),
    ])
    .await;
    // An audience array that contains ours is accepted.
    let (app, t, key) = hs256_app().await;
    let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header_of(&t.access)["kid"] });
    let mut claims = claims_of(&app, &t);
    claims["aud"] = json!(["billing", "tessera"]);
    let token = sign_raw(&key, &header.to_string(), &claims.to_string());
    assert_eq!(app.verify(&token).await, StatusCode::OK);
}

#[tokio::test]
async fn a12_only_at_jwt_is_accepted() {
    let (app, t, key) = hs256_app().await;
    let kid = header_of(&t.access)["kid"].clone();
    let claims = claims_of(&app, &t).to_string();
    let with_typ = |typ: Option<&str>| {
        let mut h = json!({ "alg": "HS256", "kid": kid });
        if let Some(typ) = typ {
            h["typ"] = typ.into();
        }
        sign_raw(&key, &h.to_string(), &claims)
    };
    assert_eq!(
        app.verify(&with_typ(Some("application/at+jwt"))).await,
        StatusCode::OK
    );
    assert_all_refused(
        &app,
        vec![
            ("typ missing".into(), with_typ(None)),
            ("typ JWT".into(), with_typ(Some("JWT"))),
            (
                "another type we might sign".into(),
                with_typ(Some("reset+jwt")),
            ),
            ("a refresh token as bearer".into(), t.refresh.clone()),
        ],
    )
    .await;
}

#[tokio::test]
async fn a13_issued_tokens_carry_the_required_claims_and_tokens_without_them_are_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let claims = tessera_test_support::claims_of(&t.access);
    for name in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"] {
        assert!(claims.get(name).is_some(), "issued tokens carry {name}");
    }
    let remove = |name: &'static str| -> Edit {
        (
            name,
            Box::new(move |c: &mut Value| {
                c.as_object_mut().expect("obj").remove(name);
            }),
        )
    };
    doctored(vec![
        remove("sub"),
        remove("client_id"),
        remove("jti"),
        remove("iat"),
    ])
    .await;
}

#[tokio::test]
async fn a14_unknown_crit_and_unencoded_payloads_are_refused() {
    let (app, t, key) = hs256_app().await;
    let kid = header_of(&t.access)["kid"].clone();
    let claims = claims_of(&app, &t).to_string();
    let cases = vec![
        json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid, "crit": ["exp"] }),
        json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid, "crit": ["b64"], "b64": false }),
    ]
    .into_iter()
    .map(|h| (h.to_string(), sign_raw(&key, &h.to_string(), &claims)))
    .collect();
    assert_all_refused(&app, cases).await;
}

#[tokio::test]
async fn a15_only_strict_compact_serialisation_is_accepted() {
    let (app, t, key) = hs256_app().await;
    let kid = header_of(&t.access)["kid"].clone();
    let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid }).to_string();
    let claims = claims_of(&app, &t).to_string();
    let good = sign_raw(&key, &header, &claims);
    let (h, rest) = good.split_once('.').expect("jwt");
    let (p, s) = rest.split_once('.').expect("jwt");
    // 2 000 levels fit in a token; 10 000 do not (refused as oversize, below).
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let standard_b64 = s.replace('-', "+").replace('_', "/");
    let cases = vec![
        (
            "JSON serialisation".into(),
            json!({ "protected": h, "payload": p, "signature": s }).to_string(),
        ),
        (
            "JWE, five segments".into(),
            format!("{h}.{p}.{s}.AAAA.AAAA"),
        ),
        ("an extra segment".into(), format!("{good}.")),
        ("= padding".into(), format!("{good}=")),
        (
            "+ and / characters".into(),
            format!("{h}.{p}.{}+/", &standard_b64[..standard_b64.len() - 2]),
        ),
        ("non-UTF-8 payload".into(), {
            let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, b'{']));
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        }),
        (
            "duplicate alg".into(),
            sign_raw(
                &key,
                &format!(r#"{{"alg":"HS256","alg":"none","typ":"at+jwt","kid":{kid}}}"#),
                &claims,
            ),
        ),
        (
            "duplicate sub".into(),
            sign_raw(
                &key,
                &header,
                &claims.replacen('{', r#"{"sub":"someone-else","#, 1),
            ),
        ),
        (
            "2 000-deep nesting".into(),
            sign_raw(&key, &header, &nested(2_000)),
        ),
    ];
    assert_all_refused(&app, cases).await;
    // Oversize: refused before any decoding, never a 5xx.
    for (name, token) in [
        ("16 KiB", format!("{h}.{}.{s}", "A".repeat(16 * 1024))),
        (
            "10 000-deep nesting",
            sign_raw(&key, &header, &nested(10_000)),
        ),
    ] {
        let r = app.get_bearer("/v1/auth/verify", &token).await;
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::BAD_REQUEST,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            ]
            .contains(&r.status()),
            "{name}: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn a17_bearer_transport_rules() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    // No credentials: a bare challenge, no error attribute (RFC 6750 §3.1).
    let r = app
        .request(Method::GET, "/v1/auth/verify")
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"tessera\"");
    // A token in the URL is never read.
    let r = app
        .request(
            Method::GET,
            &format!("/v1/auth/verify?access_token={}", t.access),
        )
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Nor in a form body.
    let r = app
        .request(Method::POST, "/v1/auth/verify")
        .form(&[("access_token", t.access.as_str())])
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Two Authorization headers: 400 invalid_request (one method, once).
    let r = app
        .request(Method::GET, "/v1/auth/verify")
        .header("authorization", format!("Bearer {}", t.access))
        .header("authorization", format!("Bearer {}", t.access))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(r).await["error"], "invalid_request");
    // The scheme is case-insensitive.
    let r = app
        .request(Method::GET, "/v1/auth/verify")
        .header("authorization", format!("bearer {}", t.access))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), StatusCode::OK);
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
