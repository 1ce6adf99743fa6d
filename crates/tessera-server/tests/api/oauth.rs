//! The OAuth 2.0 surface: `/oauth/token` (RFC 6749 §5, §6), `/oauth/revoke` (RFC 7009),
//! `/oauth/introspect` (RFC 7662) and the metadata (RFC 8414). One test per error case that
//! applies; each names its section or SECURITY.md id.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tessera_server::config::ClientConfig;
use tessera_test_support::{json_body, TestApp, Tokens, PASSWORD};

use super::spawn_app_with;

/// A confidential client that may introspect.
pub(crate) const BACKEND: &str = "backend";
/// Another confidential client, without introspection.
pub(crate) const OTHER: &str = "other-backend";
/// A public client.
pub(crate) const SPA: &str = "spa";

/// A Tessera with three registered clients, and the two secrets.
pub(crate) struct OAuthApp {
    pub(crate) app: TestApp,
    pub(crate) secret: String,
    pub(crate) other_secret: String,
}

pub(crate) async fn spawn_oauth_app() -> OAuthApp {
    spawn_oauth_app_with(|_| {}).await
}

/// [`spawn_oauth_app`] with settings changed by `configure`.
pub(crate) async fn spawn_oauth_app_with(
    configure: impl FnOnce(&mut tessera_server::Settings),
) -> OAuthApp {
    let (secret, hash) = tessera_server::clients::new_secret();
    let (other_secret, other_hash) = tessera_server::clients::new_secret();
    let app = spawn_app_with(|s| {
        s.clients = vec![
            ClientConfig {
                id: BACKEND.into(),
                secret_sha256: Some(hash),
                introspect: true,
            },
            ClientConfig {
                id: OTHER.into(),
                secret_sha256: Some(other_hash),
                introspect: false,
            },
            ClientConfig {
                id: SPA.into(),
                secret_sha256: None,
                introspect: false,
            },
        ];
        configure(s);
    })
    .await;
    OAuthApp {
        app,
        secret,
        other_secret,
    }
}

impl OAuthApp {
    /// `POST path` as `BACKEND`, authenticated with HTTP Basic, with a form body.
    pub(crate) fn backend(&self, path: &str) -> RequestBuilder {
        self.app
            .request(Method::POST, path)
            .basic_auth(BACKEND, Some(&self.secret))
    }

    /// Signs `username` up and logs in for `client` (with its secret, if any).
    pub(crate) async fn session(&self, username: &str, client: &str) -> Tokens {
        let r = self.app.sign_up(username, PASSWORD).await;
        assert!(r.status().is_success() || r.status() == StatusCode::CONFLICT);
        self.login(username, client).await
    }

    /// Logs `username` in for `client`.
    pub(crate) async fn login(&self, username: &str, client: &str) -> Tokens {
        let mut body = json!({ "username": username, "password": PASSWORD, "client_id": client });
        match client {
            BACKEND => body["client_secret"] = self.secret.clone().into(),
            OTHER => body["client_secret"] = self.other_secret.clone().into(),
            _ => {}
        }
        let r = self.app.post_json("/v1/auth/login", &body).await;
        assert_eq!(r.status(), StatusCode::OK, "login for {client}");
        let v = json_body(r).await;
        let s = |k: &str| v[k].as_str().expect("field").to_owned();
        Tokens {
            access: s("access_token"),
            refresh: s("refresh_token"),
            session_id: s("session_id"),
            user_id: s("user_id"),
        }
    }

    /// `/oauth/token` with the refresh grant, as `BACKEND`.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Response {
        send(self.backend("/oauth/token").form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]))
        .await
    }

    /// `/oauth/introspect` as `BACKEND`: the JSON answer.
    pub(crate) async fn introspect(&self, token: &str) -> Value {
        let r = send(self.backend("/oauth/introspect").form(&[("token", token)])).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json"));
        json_body(r).await
    }

    /// `/oauth/revoke` as `BACKEND`.
    pub(crate) async fn revoke(&self, token: &str) -> Response {
        send(self.backend("/oauth/revoke").form(&[("token", token)])).await
    }
}

/// `token` with one character changed well inside its signature or tag (the last character may
/// carry only padding bits).
pub(crate) fn tampered(token: &str) -> String {
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    format!("{}{swapped}{}", &token[..at], &token[at + 1..])
}

pub(crate) async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("request")
}

async fn assert_error(r: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status, "expected {code}");
    let body = json_body(r).await;
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

async fn assert_invalid_client(r: Response) {
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii")),
        Some("Basic realm=\"tessera\""),
        "RFC 6749 §5.2: 401 carries a challenge"
    );
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

// ---- /oauth/token ----------------------------------------------------------------------------

#[tokio::test]
async fn b1_a_refresh_answers_a_new_pair_uncached() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let r = o.refresh(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");
    let body = json_body(r).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_ne!(body["refresh_token"], t.refresh.as_str());
    let access = body["access_token"].as_str().expect("access token");
    assert_eq!(o.app.verify(access).await, StatusCode::OK);
    let claims = tessera_test_support::claims_of(access);
    assert_eq!(claims["client_id"], BACKEND, "RFC 9068 §2.2");
}

#[tokio::test]
async fn b2_b5_rotation_grace_retry_and_reuse_as_on_the_json_api() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let first = json_body(o.refresh(&t.refresh).await).await;
    // B5: a retry inside the grace window gets the same successor.
    let retry = o.refresh(&t.refresh).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()["tessera-refresh-outcome"], "grace_retry");
    let retry = json_body(retry).await;
    assert_eq!(retry["refresh_token"], first["refresh_token"]);
    // B2: after the window, the old token is reuse: the whole family dies.
    o.app.clock.advance(Duration::from_secs(6));
    let r = o.refresh(&t.refresh).await;
    assert_eq!(r.headers()["tessera-refresh-outcome"], "reused");
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let successor = first["refresh_token"].as_str().expect("rt");
    assert_error(
        o.refresh(successor).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let access = first["access_token"].as_str().expect("at");
    assert_eq!(o.app.verify(access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(o.introspect(access).await, json!({ "active": false }));
}

#[tokio::test]
async fn rfc6749_5_2_invalid_request() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let cases: Vec<(&str, RequestBuilder)> = vec![
        (
            "no grant_type",
            o.backend("/oauth/token")
                .form(&[("refresh_token", t.refresh.as_str())]),
        ),
        (
            "no refresh_token (B11)",
            o.backend("/oauth/token")
                .form(&[("grant_type", "refresh_token")]),
        ),
        (
            "an empty refresh_token counts as none (§3.1)",
            o.backend("/oauth/token")
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "")]),
        ),
        (
            "a repeated parameter (§3.1, B11)",
            o.backend("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=refresh_token&refresh_token={0}&refresh_token={0}",
                    t.refresh
                )),
        ),
        (
            "a JSON body (F3)",
            o.backend("/oauth/token")
                .json(&json!({ "grant_type": "refresh_token", "refresh_token": t.refresh })),
        ),
        (
            "two authentication methods (§2.3)",
            o.backend("/oauth/token").form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t.refresh.as_str()),
                ("client_secret", o.secret.as_str()),
            ]),
        ),
    ];
    for (name, request) in cases {
        let r = send(request).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(json_body(r).await["error"], "invalid_request", "{name}");
    }
    // Nothing above consumed the token.
    assert_eq!(o.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rfc6749_5_2_invalid_client() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", t.refresh.as_str()),
    ];
    let token = |c: RequestBuilder| c.form(&grant);
    let post = || o.app.request(Method::POST, "/oauth/token");
    let mut wrong = o.secret.clone();
    wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
    for (name, request) in [
        ("no client at all", token(post())),
        (
            "an unknown client",
            token(post().basic_auth("nobody", Some("x"))),
        ),
        (
            "a wrong secret",
            token(post().basic_auth(BACKEND, Some(&wrong))),
        ),
        ("no secret", token(post().basic_auth(BACKEND, None::<&str>))),
        (
            "the other client's secret",
            token(post().basic_auth(BACKEND, Some(&o.other_secret))),
        ),
        (
            "a secret for a public client",
            token(post().basic_auth(SPA, Some(&o.secret))),
        ),
        (
            "client_secret_post with a wrong secret",
            post().form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t.refresh.as_str()),
                ("client_id", BACKEND),
                ("client_secret", wrong.as_str()),
            ]),
        ),
        (
            "a confidential client naming itself without its secret",
            post().form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t.refresh.as_str()),
                ("client_id", BACKEND),
            ]),
        ),
        (
            "malformed Basic",
            token(post().header("authorization", "Basic %%%")),
        ),
    ] {
        let r = send(request).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_invalid_client(r).await;
    }
    // client_secret_post works as well as Basic, and nothing above consumed the token.
    let r = send(post().form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", t.refresh.as_str()),
        ("client_id", BACKEND),
        ("client_secret", o.secret.as_str()),
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn rfc6749_5_2_invalid_grant() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let theirs = o.login("alice", OTHER).await;
    for (name, token) in [
        ("garbage", "not-a-token".to_owned()),
        ("a forged tag", tampered(&t.refresh)),
        ("an access token", t.access.clone()),
        ("B7: another client's refresh token", theirs.refresh.clone()),
    ] {
        let r = o.refresh(&token).await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert_eq!(body["reason"], "invalid_refresh_token", "{name}: no oracle");
    }
    // B7: the other client's token was neither used nor burned: its owner refreshes it.
    let r = send(
        o.app
            .request(Method::POST, "/oauth/token")
            .basic_auth(OTHER, Some(&o.other_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", theirs.refresh.as_str()),
            ]),
    )
    .await;
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");

    // B9: an idle session is dead however recently its token was minted.
    o.app.clock.advance(Duration::from_secs(15 * 86_400));
    let body = assert_error(
        o.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(body["reason"], "session_expired");
}

#[tokio::test]
async fn b12_rfc6749_5_2_unsupported_grant_type() {
    let o = spawn_oauth_app().await;
    o.session("alice", BACKEND).await;
    for grant in [
        "password",
        "client_credentials",
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "foo",
    ] {
        let r = send(o.backend("/oauth/token").form(&[
            ("grant_type", grant),
            ("username", "alice"),
            ("password", PASSWORD),
        ]))
        .await;
        assert_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
}

#[tokio::test]
async fn b8_rfc6749_5_2_invalid_scope() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let r = send(o.backend("/oauth/token").form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", t.refresh.as_str()),
        ("scope", "admin"),
    ]))
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;
    assert_eq!(o.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn b11_f5_get_is_405_with_allow() {
    let o = spawn_oauth_app().await;
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let r = send(o.app.request(Method::GET, path)).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(r.headers()["allow"], "POST");
        assert_eq!(json_body(r).await["error"], "method_not_allowed");
    }
}

#[tokio::test]
async fn public_clients_refresh_with_their_id_alone() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", SPA).await;
    let r = send(o.app.request(Method::POST, "/oauth/token").form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", t.refresh.as_str()),
        ("client_id", SPA),
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = json_body(r).await["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    // A public client's session refreshes on the JSON API as well (no secret to prove there).
    assert_eq!(o.app.refresh_raw(&next).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_confidential_clients_session_needs_its_secret_to_refresh() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let r = o.app.refresh_raw(&t.refresh).await;
    let body = assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(body["reason"], "invalid_refresh_token");
    // First-party sessions refresh only on the JSON API's public client, not as BACKEND.
    let mine = o.app.login("alice").await;
    assert_error(
        o.refresh(&mine.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // Neither attempt burned a token.
    assert_eq!(o.refresh(&t.refresh).await.status(), StatusCode::OK);
    assert_eq!(
        o.app.refresh_raw(&mine.refresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_login_names_its_client_and_authenticates_a_confidential_one() {
    let o = spawn_oauth_app().await;
    o.app.sign_up("alice", PASSWORD).await;
    let base = json!({ "username": "alice", "password": PASSWORD });
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    for (name, body) in [
        ("unknown client", with(json!({ "client_id": "nobody" }))),
        ("no secret", with(json!({ "client_id": BACKEND }))),
        (
            "wrong secret",
            with(json!({ "client_id": BACKEND, "client_secret": o.other_secret })),
        ),
    ] {
        let r = o.app.post_json("/v1/auth/login", &body).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_invalid_client(r).await;
    }
    // HTTP Basic works as well as the body fields.
    let r = o
        .app
        .request(Method::POST, "/v1/auth/login")
        .basic_auth(BACKEND, Some(&o.secret))
        .json(&base)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::OK);
    let claims = tessera_test_support::claims_of(
        json_body(r).await["access_token"]
            .as_str()
            .expect("access token"),
    );
    assert_eq!(claims["client_id"], BACKEND);
    // Without a client: the first-party one.
    let t = o.app.login("alice").await;
    assert_eq!(
        tessera_test_support::claims_of(&t.access)["client_id"],
        "tessera"
    );
}

// ---- /oauth/revoke ---------------------------------------------------------------------------

#[tokio::test]
async fn c4_revoking_a_refresh_token_ends_the_session_and_its_access_tokens() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let other = o.login("alice", BACKEND).await;
    // The hint is only a hint (RFC 7009 §2.1): a wrong one changes nothing.
    let r = send(o.backend("/oauth/revoke").form(&[
        ("token", t.refresh.as_str()),
        ("token_type_hint", "access_token"),
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_error(
        o.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(o.app.verify(&t.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(o.introspect(&t.access).await, json!({ "active": false }));
    // Only that session.
    assert_eq!(o.app.verify(&other.access).await, StatusCode::OK);
    // Again: still 200 (idempotent).
    assert_eq!(o.revoke(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn c4_revoking_an_access_token_denies_it_until_it_expires() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let r = send(o.backend("/oauth/revoke").form(&[
        ("token", t.access.as_str()),
        ("token_type_hint", "refresh_token"),
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(o.app.verify(&t.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(o.introspect(&t.access).await, json!({ "active": false }));
    // The session goes on: its refresh token still rotates.
    assert_eq!(o.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn c4_rfc7009_2_2_unknown_tokens_answer_200() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    for token in [
        "garbage",
        "rt1.AAAAAAAAAAAAAAAAAAAAAA.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &tampered(&t.refresh),
        &tampered(&t.access),
    ] {
        assert_eq!(o.revoke(token).await.status(), StatusCode::OK, "{token}");
    }
    // None of them was taken for the real ones.
    assert_eq!(o.app.verify(&t.access).await, StatusCode::OK);
    assert_eq!(o.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn c4_rfc7009_2_2_1_errors() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let theirs = o.login("alice", OTHER).await;
    // `token` missing.
    let r = send(
        o.backend("/oauth/revoke")
            .form(&[("token_type_hint", "refresh_token")]),
    )
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A failed client authentication.
    let r = send(
        o.app
            .request(Method::POST, "/oauth/revoke")
            .basic_auth(BACKEND, Some(&o.other_secret))
            .form(&[("token", t.refresh.as_str())]),
    )
    .await;
    assert_invalid_client(r).await;
    // Another client's tokens: refused, nothing revoked (§2.1).
    for token in [&theirs.refresh, &theirs.access] {
        let r = o.revoke(token).await;
        assert_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    }
    assert_eq!(o.app.verify(&theirs.access).await, StatusCode::OK);
    assert_eq!(o.app.verify(&t.access).await, StatusCode::OK);
    // JSON instead of a form.
    let r = send(
        o.backend("/oauth/revoke")
            .json(&json!({ "token": t.refresh })),
    )
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A public client revokes its own tokens with its id alone.
    let spa = o.login("alice", SPA).await;
    let r = send(
        o.app
            .request(Method::POST, "/oauth/revoke")
            .form(&[("token", spa.refresh.as_str()), ("client_id", SPA)]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(o.app.verify(&spa.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn c5_a_revocation_the_store_did_not_take_is_503_never_200() {
    use sqlx::{Connection as _, Executor as _, SqliteConnection};
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let url = format!("sqlite://{}", o.app.data_dir().join("tessera.db").display());
    let mut holder = SqliteConnection::connect(&url).await.expect("connect");
    holder.execute("begin immediate").await.expect("lock");
    for token in [&t.refresh, &t.access] {
        let r = o.revoke(token).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
    }
    let r = o.refresh(&t.refresh).await;
    assert_error(
        r,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    holder.execute("rollback").await.expect("unlock");
    drop(holder);
    assert_eq!(
        o.app.verify(&t.access).await,
        StatusCode::OK,
        "nothing revoked"
    );
    let r = o.refresh(&t.refresh).await;
    assert_eq!(
        r.headers()["tessera-refresh-outcome"],
        "rotated",
        "nothing consumed by the failed refresh"
    );
    assert_eq!(o.revoke(&t.refresh).await.status(), StatusCode::OK);
    assert_eq!(o.app.verify(&t.access).await, StatusCode::UNAUTHORIZED);
}

// ---- /oauth/introspect -----------------------------------------------------------------------

#[tokio::test]
async fn c6_introspection_needs_an_authenticated_allowed_client() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let post = || o.app.request(Method::POST, "/oauth/introspect");
    let form = [("token", t.access.as_str())];
    for (name, request) in [
        ("no credentials", post().form(&form)),
        (
            "a wrong secret",
            post()
                .basic_auth(BACKEND, Some(&o.other_secret))
                .form(&form),
        ),
        (
            "a public client",
            post().form(&[("token", t.access.as_str()), ("client_id", SPA)]),
        ),
    ] {
        let r = send(request).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_invalid_client(r).await;
    }
    let r = send(post().basic_auth(OTHER, Some(&o.other_secret)).form(&form)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let r = send(
        o.backend("/oauth/introspect")
            .form(&[("token_type_hint", "access_token")]),
    )
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // client_secret_post works as well as Basic.
    let r = send(post().form(&[
        ("token", t.access.as_str()),
        ("client_id", BACKEND),
        ("client_secret", o.secret.as_str()),
    ]))
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await["active"], true);
}

#[tokio::test]
async fn the_json_logout_takes_no_confidential_clients_refresh_token() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    // Without the client's secret the token is no credential: nothing ends.
    let r = o
        .app
        .post_json("/v1/auth/logout", &json!({ "refresh_token": t.refresh }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await["sessions_ended"], 0);
    let r = o
        .app
        .post_json(
            "/v1/auth/logout-all",
            &json!({ "refresh_token": t.refresh }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(o.app.verify(&t.access).await, StatusCode::OK);
    assert_eq!(o.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoking_another_clients_dead_token_is_a_200_like_any_dead_token() {
    let o = spawn_oauth_app().await;
    let theirs = o.session("alice", OTHER).await;
    o.app.clock.advance(Duration::from_secs(300 + 31));
    assert_eq!(o.revoke(&theirs.access).await.status(), StatusCode::OK);
    let r = send(
        o.app
            .request(Method::POST, "/oauth/revoke")
            .basic_auth(OTHER, Some(&o.other_secret))
            .form(&[("token", theirs.refresh.as_str())]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        o.revoke(&theirs.refresh).await.status(),
        StatusCode::OK,
        "already revoked"
    );
}

#[tokio::test]
async fn c7_active_tokens_carry_their_claims() {
    let o = spawn_oauth_app().await;
    // A first-party session's token: introspection serves every client of this Tessera.
    let first_party = o.app.user("bob").await;
    let t = o.session("alice", BACKEND).await;
    for (token, client) in [(&t.access, BACKEND), (&first_party.access, "tessera")] {
        let v = o.introspect(token).await;
        let claims = tessera_test_support::claims_of(token);
        assert_eq!(v["active"], true);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["client_id"], client);
        for name in ["iss", "sub", "aud", "exp", "iat", "jti", "sid"] {
            assert_eq!(v[name], claims[name], "{name}");
        }
    }
    // The refresh token of the caller's own session.
    let v = o.introspect(&t.refresh).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "refresh_token");
    assert_eq!(v["sub"], t.user_id.as_str());
    assert_eq!(v["sid"], t.session_id.as_str());
    assert_eq!(v["client_id"], BACKEND);
    assert!(v["exp"].as_i64().expect("exp") > v["iat"].as_i64().expect("iat"));
}

#[tokio::test]
async fn c7_inactive_tokens_say_nothing_more() {
    let o = spawn_oauth_app().await;
    let t = o.session("alice", BACKEND).await;
    let theirs = o.login("alice", OTHER).await;
    let inactive = json!({ "active": false });
    let forged = tampered(&t.access);
    for token in ["garbage", forged.as_str(), theirs.refresh.as_str()] {
        assert_eq!(o.introspect(token).await, inactive, "{token}");
    }
    // A rotated refresh token (not the current one) is inactive, and looking at it after the
    // grace window is no replay: the successor stays active and still rotates.
    let next = json_body(o.refresh(&t.refresh).await).await;
    o.app.clock.advance(Duration::from_secs(6));
    assert_eq!(o.introspect(&t.refresh).await, inactive);
    let next_refresh = next["refresh_token"].as_str().expect("rt");
    assert_eq!(o.introspect(next_refresh).await["active"], true);
    let next = json_body(o.refresh(next_refresh).await).await;
    let next_refresh = next["refresh_token"].as_str().expect("rt");
    // Blocked user: every token inactive at once.
    let r = o
        .app
        .admin(
            Method::POST,
            &format!("/v1/admin/users/{}/block", t.user_id),
            None,
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    for token in [next["access_token"].as_str().expect("at"), next_refresh] {
        assert_eq!(o.introspect(token).await, inactive);
    }
    // Expired.
    let u = o.session("carol", BACKEND).await;
    o.app.clock.advance(Duration::from_secs(300 + 31));
    assert_eq!(o.introspect(&u.access).await, inactive);
}

#[tokio::test]
async fn rfc8414_metadata_describes_exactly_what_is_supported() {
    let o = spawn_oauth_app().await;
    let r = send(
        o.app
            .request(Method::GET, "/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let m = json_body(r).await;
    let issuer = o.app.settings.issuer.clone().expect("issuer");
    assert_eq!(m["issuer"], issuer.as_str());
    assert_eq!(m["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(m["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{issuer}/oauth/introspect")
    );
    assert_eq!(m["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(m["grant_types_supported"], json!(["refresh_token"]));
    assert_eq!(m["response_types_supported"], json!([]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert!(m.get("authorization_endpoint").is_none());
}

#[tokio::test]
async fn admins_mint_sessions_for_registered_clients_only() {
    let o = spawn_oauth_app().await;
    o.app.sign_up("alice", PASSWORD).await;
    let mint = |client: &str| {
        o.app.admin(
            Method::POST,
            "/v1/admin/sessions",
            Some(json!({ "user": "alice", "client_id": client })),
        )
    };
    assert_error(
        mint("nobody").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let r = mint(BACKEND).await;
    assert_eq!(r.status(), StatusCode::OK);
    let minted = json_body(r).await;
    let refresh = minted["refresh_token"].as_str().expect("rt");
    assert_eq!(o.refresh(refresh).await.status(), StatusCode::OK);
}
