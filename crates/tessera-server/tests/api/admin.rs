//! The admin API: block, unblock, force logout, sessions, users, minting, and its authentication.

use super::{spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tessera_test_support::{json_body, ADMIN_KEY, PASSWORD};

#[tokio::test]
async fn blocking_kills_live_tokens_at_once_and_looks_like_a_wrong_password() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    app.user("bob").await;

    let blocked = app
        .admin(Method::POST, "/v1/admin/users/alice/block", None)
        .await;
    assert_eq!(blocked.status(), StatusCode::OK);
    assert_eq!(json_body(blocked).await["sessions_ended"], 1);
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::UNAUTHORIZED,
        "the live access token dies at once"
    );
    let refresh = json_body(app.refresh_raw(&t.refresh).await).await;
    assert_eq!(refresh["error"], "invalid_grant");

    // Same status, same body as a wrong password (OWASP: no account-state oracle).
    let blocked_login = app.login_raw("alice", PASSWORD).await;
    let wrong_password = app.login_raw("bob", "not the password").await;
    assert_eq!(blocked_login.status(), wrong_password.status());
    assert_eq!(
        blocked_login.text().await.expect("body"),
        wrong_password.text().await.expect("body")
    );

    let unblocked = app
        .admin(Method::POST, "/v1/admin/users/alice/unblock", None)
        .await;
    assert_eq!(unblocked.status(), StatusCode::OK);
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::UNAUTHORIZED,
        "old tokens stay dead"
    );
    assert_eq!(
        app.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    let again = app.login("alice").await;
    assert_eq!(
        app.verify(&again.access).await,
        StatusCode::OK,
        "a new login works"
    );
}

#[tokio::test]
async fn force_logout_ends_every_session_and_access_token() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.login("alice").await;
    let bob = app.user("bob").await;
    let path = format!("/v1/admin/users/{}/logout", a.user_id);
    let r = app.admin(Method::POST, &path, None).await;
    assert_eq!(json_body(r).await["sessions_ended"], 2);
    for t in [&a, &b] {
        assert_eq!(app.verify(&t.access).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.refresh_raw(&t.refresh).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.verify(&bob.access).await,
        StatusCode::OK,
        "other users untouched"
    );
    // Idempotent.
    assert_eq!(
        app.admin(Method::POST, &path, None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn admins_list_and_end_any_users_sessions() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    app.login("alice").await;
    let list = json_body(
        app.admin(Method::GET, "/v1/admin/users/alice/sessions", None)
            .await,
    )
    .await;
    assert_eq!(list["sessions"].as_array().expect("list").len(), 2);
    let path = format!("/v1/admin/sessions/{}", a.session_id);
    assert_eq!(
        app.admin(Method::DELETE, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.verify(&a.access).await, StatusCode::UNAUTHORIZED);
    let user = json_body(app.admin(Method::GET, "/v1/admin/users/alice", None).await).await;
    assert_eq!(user["live_sessions"], 1);
    assert_eq!(
        app.admin(Method::DELETE, "/v1/admin/sessions/nope", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::GET, "/v1/admin/users/nobody", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn admins_mint_sessions_for_subjects_authenticated_elsewhere() {
    let app = spawn_app().await;
    let r = app
        .admin(
            Method::POST,
            "/v1/admin/sessions",
            Some(json!({ "user": "sso-carol", "create": true })),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = json_body(r).await;
    let access = body["access_token"].as_str().expect("at");
    assert_eq!(app.verify(access).await, StatusCode::OK);
    let refreshed = app
        .refresh_raw(body["refresh_token"].as_str().expect("rt"))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    // The minted user has no password: password login fails like any wrong password.
    assert_eq!(
        app.login_raw("sso-carol", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Without `create`, an unknown subject is refused.
    let unknown = app
        .admin(
            Method::POST,
            "/v1/admin/sessions",
            Some(json!({ "user": "nobody" })),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_create_list_and_delete_users() {
    let app = spawn_app().await;
    let created = app
        .admin(
            Method::POST,
            "/v1/admin/users",
            Some(json!({ "username": "dave", "password": PASSWORD, "roles": ["admin"] })),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let dave = app.login("dave").await;
    // An access token with the admin role works on the admin API.
    let listed = app
        .request(Method::GET, "/v1/admin/users")
        .bearer_auth(&dave.access)
        .send()
        .await
        .expect("request");
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(json_body(listed).await["users"][0]["username"], "dave");

    let path = format!("/v1/admin/users/{}", dave.user_id);
    assert_eq!(
        app.admin(Method::DELETE, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.verify(&dave.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh_raw(&dave.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login_raw("dave", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_key_or_the_admin_role() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let none = app
        .request(Method::GET, "/v1/admin/users")
        .send()
        .await
        .expect("request");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"tessera\""
    );
    let wrong = app
        .request(Method::GET, "/v1/admin/users")
        .bearer_auth("x".repeat(40))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let user = app
        .request(Method::POST, "/v1/admin/users/alice/block")
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("request");
    assert_eq!(user.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(user).await["error"], "insufficient_scope");
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "nothing happened"
    );
}

#[tokio::test]
async fn without_a_configured_key_the_admin_api_is_closed() {
    let app = spawn_app_with(|s| s.admin_api_key = None).await;
    let r = app
        .request(Method::GET, "/v1/admin/users")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let empty = app
        .request(Method::GET, "/v1/admin/users")
        .bearer_auth("")
        .send()
        .await
        .expect("request");
    assert_eq!(empty.status(), StatusCode::UNAUTHORIZED);
}
