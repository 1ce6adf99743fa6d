//! Bad input gets a clear 4xx JSON error: never a 500, a panic or a hang.

use super::spawn_app;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_test_support::{json_body, PASSWORD};

/// (case name, path, content type, body, expected status)
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
);

#[tokio::test]
async fn malformed_bodies_get_json_errors() {
    let app = spawn_app().await;
    app.user("alice").await;
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            "/v1/auth/login",
            Some("application/json"),
            b"{\"username\":".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "truncated",
            "/v1/auth/refresh",
            Some("application/json"),
            b"{\"refresh_token\":\"rt1.abc".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            "/v1/auth/login",
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing field",
            "/v1/auth/login",
            Some("application/json"),
            br#"{"username":"alice"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong type",
            "/v1/auth/login",
            Some("application/json"),
            br#"{"username":1,"password":2}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            "/v1/users",
            Some("application/json"),
            br#"{"username":"x","password":"y","admin":true}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalid UTF-8",
            "/v1/auth/login",
            Some("application/json"),
            b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "deep nesting",
            "/v1/auth/login",
            Some("application/json"),
            "[".repeat(10_000).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "form instead of JSON",
            "/v1/auth/login",
            Some("application/x-www-form-urlencoded"),
            b"username=alice&password=x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            "/v1/auth/refresh",
            None,
            br#"{"refresh_token":"x"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "oversized",
            "/v1/auth/login",
            Some("application/json"),
            format!("{{\"username\":\"{}\"}}", "a".repeat(20_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "bad logout scope",
            "/v1/auth/logout",
            Some("application/json"),
            br#"{"scope":"galaxy"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, path, content_type, body, expected) in cases {
        let mut req = app.request(Method::POST, path).body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), expected, "{name}");
        let body = json_body(r).await;
        assert!(
            body["error"].is_string() && body["error_description"].is_string(),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn passwords_over_one_kib_are_refused_before_hashing() {
    let app = spawn_app().await;
    let long = "a".repeat(1025);
    let r = app.login_raw("alice", &long).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.sign_up("alice", &long).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // 64 characters and Unicode are fine, and nothing is truncated.
    let passphrase = "ünïcødé passphrase with sixty-four characters in total, exactly!";
    assert_eq!(
        app.sign_up("bob", passphrase).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login_raw("bob", passphrase).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_raw("bob", &passphrase[..passphrase.len() - 1])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn login_failures_are_indistinguishable() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("blocked").await;
    app.admin(Method::POST, "/v1/admin/users/blocked/block", None)
        .await;
    app.admin(
        Method::POST,
        "/v1/admin/users",
        Some(json!({ "username": "nopass" })),
    )
    .await;
    let mut answers = Vec::new();
    for (user, password) in [
        ("nobody", PASSWORD),
        ("alice", "wrong password"),
        ("blocked", PASSWORD),
        ("nopass", PASSWORD),
    ] {
        let r = app.login_raw(user, password).await;
        let status = r.status();
        let content_type = r.headers()[CONTENT_TYPE].clone();
        answers.push((status, content_type, r.text().await.expect("body")));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let r = app
        .request(Method::GET, "/v1/nothing-here")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(r).await["error"], "not_found");
    let r = app
        .request(Method::GET, "/v1/auth/login")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(json_body(r).await["error"], "method_not_allowed");
    let r = app
        .request(Method::DELETE, "/v1/auth/refresh")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let r = app
        .request(Method::GET, "/v1/auth/me")
        .header("authorization", format!("Bearer {}", t.access))
        .header("authorization", format!("Bearer {}", t.access))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(r).await["error"], "invalid_request");
    let lower = app
        .request(Method::GET, "/v1/auth/me")
        .header("authorization", format!("bearer {}", t.access))
        .send()
        .await
        .expect("request");
    assert_eq!(
        lower.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_then_allowed_again() {
    let app = spawn_app().await;
    app.user("alice").await;
    for _ in 0..5 {
        assert_eq!(
            app.login_raw("alice", "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = app.login_raw("alice", PASSWORD).await;
    assert_eq!(
        throttled.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert_eq!(json_body(throttled).await["error"], "too_many_requests");
    // Unknown accounts are throttled alike: a 429 says nothing about existence.
    for _ in 0..5 {
        app.login_raw("nobody", "wrong password").await;
    }
    assert_eq!(
        app.login_raw("nobody", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The delay passes; a success resets the count.
    app.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(
        app.login_raw("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_raw("alice", "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_raw("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
}
