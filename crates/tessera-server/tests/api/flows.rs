//! The flows of the README walk-through, end to end.

use super::{spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_test_support::{claims_of, json_body, PASSWORD};

#[tokio::test]
async fn sign_up_log_in_call_me_and_refresh() {
    let app = spawn_app().await;
    let signed_up = app.sign_up("alice", PASSWORD).await;
    assert_eq!(signed_up.status(), StatusCode::CREATED);
    let user = json_body(signed_up).await;
    assert_eq!(user["username"], "alice");

    let login = app.login_raw("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["cache-control"], "no-store");
    assert_eq!(login.headers()["pragma"], "no-cache");
    let body = json_body(login).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["user_id"], user["id"]);
    let access = body["access_token"].as_str().expect("access token");
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    assert!(refresh.starts_with("rt1."), "{refresh}");

    // RFC 9068 §2.2: the claims every resource server expects.
    let claims = claims_of(access);
    for name in ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id"] {
        assert!(claims.get(name).is_some(), "claim {name} in {claims}");
    }
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["iss"], "http://tessera.test");
    let header = claims_of(&format!("x.{}", access.split('.').next().expect("header")));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");

    let me = json_body(app.get_bearer("/v1/auth/me", access).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["sid"], body["session_id"]);

    let refreshed = app.refresh_raw(refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()["tessera-refresh-outcome"], "rotated");
    let next = json_body(refreshed).await;
    assert_ne!(next["refresh_token"], body["refresh_token"]);
    assert_ne!(next["access_token"], body["access_token"]);
    assert_eq!(next["session_id"], body["session_id"]);
    assert_eq!(
        app.verify(next["access_token"].as_str().expect("at")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn replaying_an_old_refresh_token_kills_the_whole_session() {
    let app = spawn_app().await;
    let first = app.user("alice").await;
    let second = app.refresh(&first.refresh).await;
    app.clock.advance(std::time::Duration::from_secs(6)); // past the 5 s grace

    let replay = app.refresh_raw(&first.refresh).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(replay.headers()["tessera-refresh-outcome"], "reused");
    let body = json_body(replay).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["reason"], "refresh_token_reused");

    // The thief's (or victim's) newer token is dead too, and so is its access token, at once.
    let successor = app.refresh_raw(&second.refresh).await;
    assert_eq!(successor.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(successor).await["reason"], "session_revoked");
    assert_eq!(app.verify(&second.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.verify(&first.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_kills_the_access_token_at_once() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    assert_eq!(app.verify(&t.access).await, StatusCode::OK);

    let out = app.logout(&t.access, "session").await;
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(json_body(out).await["sessions_ended"], 1);

    let verify = app.get_bearer("/v1/auth/verify", &t.access).await;
    assert_eq!(verify.status(), StatusCode::UNAUTHORIZED);
    let challenge = verify.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(
        app.get_bearer("/v1/auth/me", &t.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = json_body(app.refresh_raw(&t.refresh).await).await;
    assert_eq!(
        (refresh["error"].as_str(), refresh["reason"].as_str()),
        (Some("invalid_grant"), Some("session_revoked"))
    );

    // Idempotent: logging out again, or with garbage, answers 200 and ends nothing.
    assert_eq!(
        json_body(app.logout(&t.access, "session").await).await["sessions_ended"],
        0
    );
    assert_eq!(
        app.logout("garbage", "session").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_with_an_expired_access_token_and_the_refresh_token_ends_the_session() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    app.clock.advance(std::time::Duration::from_secs(400)); // access token expired
    let out = app
        .request(Method::POST, "/v1/auth/logout")
        .bearer_auth(&t.access)
        .json(&json!({ "refresh_token": t.refresh }))
        .send()
        .await
        .expect("request");
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(json_body(out).await["sessions_ended"], 1);
    assert_eq!(
        app.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn log_out_of_other_sessions_and_everywhere() {
    let app = spawn_app().await;
    let phone = app.user("alice").await;
    let laptop = app.login("alice").await;
    let tablet = app.login("alice").await;

    let others = app.logout(&laptop.access, "others").await;
    assert_eq!(json_body(others).await["sessions_ended"], 2);
    assert_eq!(
        app.verify(&laptop.access).await,
        StatusCode::OK,
        "the caller's session stays"
    );
    assert_eq!(app.verify(&phone.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.verify(&tablet.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh_raw(&phone.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );

    let again = app.login("alice").await;
    let all = app
        .request(Method::POST, "/v1/auth/logout-all")
        .bearer_auth(&laptop.access)
        .send()
        .await
        .expect("request");
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(json_body(all).await["sessions_ended"], 2);
    for token in [&laptop.access, &again.access] {
        assert_eq!(app.verify(token).await, StatusCode::UNAUTHORIZED);
    }
    // A login in the very same second as the cutoff works.
    let fresh = app.login("alice").await;
    assert_eq!(app.verify(&fresh.access).await, StatusCode::OK);
    assert_eq!(
        app.refresh_raw(&fresh.refresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_wider_logout_scopes_need_a_live_credential() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    assert_eq!(
        app.logout("garbage", "all").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let no_credentials = app
        .request(Method::POST, "/v1/auth/logout-all")
        .send()
        .await
        .expect("request");
    assert_eq!(no_credentials.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "nothing happened"
    );
}

#[tokio::test]
async fn users_see_and_end_their_own_sessions() {
    let app = spawn_app().await;
    let phone = app.user("alice").await;
    let laptop = app.login("alice").await;
    let bob = app.user("bob").await;

    let list = json_body(app.get_bearer("/v1/auth/sessions", &laptop.access).await).await;
    let sessions = list["sessions"].as_array().expect("list");
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop.session_id.as_str());
    assert!(sessions
        .iter()
        .all(|s| s.get("nonce").is_none() && s["client_id"] == "tessera"));

    let path = format!("/v1/auth/sessions/{}", phone.session_id);
    let ended = app
        .request(Method::DELETE, &path)
        .bearer_auth(&laptop.access)
        .send()
        .await
        .expect("request");
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.verify(&phone.access).await, StatusCode::UNAUTHORIZED);

    // Someone else's session looks like an unknown one.
    let path = format!("/v1/auth/sessions/{}", bob.session_id);
    let theirs = app
        .request(Method::DELETE, &path)
        .bearer_auth(&laptop.access)
        .send()
        .await
        .expect("request");
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.verify(&bob.access).await, StatusCode::OK);
}

#[tokio::test]
async fn verify_answers_with_identity_headers() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    for method in [Method::GET, Method::POST, Method::HEAD] {
        let r = app
            .request(method.clone(), "/v1/auth/verify")
            .bearer_auth(&t.access)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{method}");
        assert_eq!(r.headers()["x-auth-sub"], t.user_id.as_str());
        assert_eq!(r.headers()["x-auth-sid"], t.session_id.as_str());
    }
    let none = app
        .request(Method::GET, "/v1/auth/verify")
        .send()
        .await
        .expect("request");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"tessera\"",
        "no error attribute without credentials"
    );
    let url_token = app
        .request(
            Method::GET,
            &format!("/v1/auth/verify?access_token={}", t.access),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(
        url_token.status(),
        StatusCode::UNAUTHORIZED,
        "tokens in URLs are never read"
    );
}

#[tokio::test]
async fn access_tokens_expire_with_a_distinct_code_then_refresh_works() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "verified once: its signature check is remembered"
    );
    app.clock.advance(std::time::Duration::from_secs(300 + 30)); // ttl + leeway
    let r = app.get_bearer("/v1/auth/me", &t.access).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
    assert_eq!(json_body(r).await["error"], "token_expired");
    let next = app.refresh(&t.refresh).await;
    assert_eq!(app.verify(&next.access).await, StatusCode::OK);
}

#[tokio::test]
async fn sign_up_can_be_closed_and_names_are_unique() {
    let closed = spawn_app_with(|s| s.signup = false).await;
    let r = closed.sign_up("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(r).await["error"], "signup_disabled");

    let app = spawn_app().await;
    assert_eq!(
        app.sign_up("alice", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let dup = app.sign_up("ALICE", PASSWORD).await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    assert_eq!(json_body(dup).await["error"], "username_taken");
    let short = app.sign_up("bob", "short").await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let weird = app.sign_up("bad name!", PASSWORD).await;
    assert_eq!(weird.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_session_cap_ends_the_oldest_session() {
    let app = spawn_app_with(|s| s.max_sessions_per_user = 2).await;
    let first = app.user("alice").await;
    app.clock.advance(std::time::Duration::from_millis(10));
    let second = app.login("alice").await;
    app.clock.advance(std::time::Duration::from_millis(10));
    let third = app.login("alice").await;
    assert_eq!(
        app.verify(&first.access).await,
        StatusCode::UNAUTHORIZED,
        "the oldest went"
    );
    assert_eq!(
        app.refresh_raw(&first.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.verify(&second.access).await, StatusCode::OK);
    assert_eq!(app.verify(&third.access).await, StatusCode::OK);
}

#[tokio::test]
async fn jwks_publishes_only_public_keys_and_health_answers() {
    let app = spawn_app().await;
    let r = app
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("max-age="));
    let jwks = json_body(r).await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("sig"))
    );
    assert!(key.get("d").is_none());

    assert_eq!(
        app.request(Method::GET, "/healthz")
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
    let ready = json_body(
        app.request(Method::GET, "/readyz")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn every_signing_algorithm_works_end_to_end() {
    use tessera_core::keys::SigningAlg;
    for alg in [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::HS256] {
        let app = spawn_app_with(|s| s.signing_alg = alg).await;
        let t = app.user("alice").await;
        let header = claims_of(&format!(
            "x.{}",
            t.access.split('.').next().expect("header")
        ));
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(app.verify(&t.access).await, StatusCode::OK, "{alg}");
        let next = app.refresh(&t.refresh).await;
        assert_eq!(app.verify(&next.access).await, StatusCode::OK, "{alg}");
        let jwks = json_body(
            app.request(Method::GET, "/.well-known/jwks.json")
                .send()
                .await
                .expect("jwks"),
        )
        .await;
        let published = jwks["keys"].as_array().expect("keys").len();
        assert_eq!(
            published,
            usize::from(alg != SigningAlg::HS256),
            "{alg}: symmetric keys are never published"
        );
    }
}

#[tokio::test]
async fn an_old_rotated_refresh_token_is_no_credential_for_logging_out_everywhere() {
    let app = spawn_app().await;
    let first = app.user("alice").await;
    let second = app.refresh(&first.refresh).await;
    app.clock.advance(std::time::Duration::from_secs(6)); // past the grace: first.refresh is old
    let all = app
        .post_json(
            "/v1/auth/logout-all",
            &json!({ "refresh_token": first.refresh }),
        )
        .await;
    assert_eq!(
        all.status(),
        StatusCode::UNAUTHORIZED,
        "a possibly stolen old token cannot end every session"
    );
    assert_eq!(app.verify(&second.access).await, StatusCode::OK);
    // The current token can.
    let all = app
        .post_json(
            "/v1/auth/logout-all",
            &json!({ "refresh_token": second.refresh }),
        )
        .await;
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(app.verify(&second.access).await, StatusCode::UNAUTHORIZED);
}
