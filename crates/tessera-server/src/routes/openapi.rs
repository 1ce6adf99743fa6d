//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole API.
//!
//! Request bodies are the handlers' own types (they derive `ToSchema` beside `Deserialize`), so
//! a field added to a request shows up here. Each operation is declared once below; the test
//! `every_route_is_documented_and_nothing_else` compares the router with this document, so a
//! route cannot be added or removed without the document following.

#![allow(dead_code)] // the operation stubs exist for their attributes only

use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Every error: a stable code and a human description (DESIGN §3).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `invalid_request`, `invalid_grant`, `invalid_token`, `token_expired`,
    /// `invalid_credentials`, `invalid_client`, `too_many_requests`, `temporarily_unavailable`, …
    error: String,
    /// What went wrong, for people.
    error_description: String,
    /// For `invalid_grant`: `invalid_refresh_token`, `refresh_token_reused`, `session_revoked`,
    /// `session_expired`, `user_blocked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    id: String,
    username: String,
    roles: Vec<String>,
    blocked: bool,
    /// RFC 3339.
    created_at: String,
    /// Admin views only.
    #[serde(skip_serializing_if = "Option::is_none")]
    live_sessions: Option<u64>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
}

/// A session ("device") as its user and admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    /// Whether it is the session of the presented access token.
    current: bool,
    client_id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    last_used_at: String,
    expires_at: String,
}

/// A user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionView>,
}

/// How many sessions a logout or block ended (unblocking ends none and says only `blocked`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions_ended: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<bool>,
}

/// The answer of `verify` (identity also in `X-Auth-*` headers).
#[derive(Debug, Serialize, ToSchema)]
pub struct Verified {
    active: bool,
    sub: String,
    sid: String,
    exp: i64,
}

/// The verified claims of the presented access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    sub: String,
    username: Option<String>,
    sid: String,
    client_id: String,
    roles: Vec<String>,
    scope: Option<String>,
    iat: i64,
    exp: i64,
    jti: String,
}

/// RFC 7662 §2.2: the claims of a live token, or `{"active": false}` and nothing more.
#[derive(Debug, Serialize, ToSchema)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// The form of `/oauth/token` (`application/x-www-form-urlencoded`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenForm {
    /// Only `refresh_token`.
    #[schema(pattern = "^refresh_token$")]
    grant_type: String,
    #[schema(min_length = 1)]
    refresh_token: String,
    /// `client_secret_post` (or HTTP Basic, or neither for a public client).
    #[schema(min_length = 1)]
    client_id: Option<String>,
    #[schema(min_length = 1)]
    client_secret: Option<String>,
}

/// The form of `/oauth/revoke` and `/oauth/introspect`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenParameterForm {
    #[schema(min_length = 1)]
    token: String,
    /// A hint only: `access_token` or `refresh_token`.
    #[schema(min_length = 1)]
    token_type_hint: Option<String>,
    #[schema(min_length = 1)]
    client_id: Option<String>,
    #[schema(min_length = 1)]
    client_secret: Option<String>,
}

/// Health and readiness: a status and, for readiness, each check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    status: String,
    #[schema(value_type = Option<Object>)]
    checks: Option<serde_json::Value>,
}

/// A document whose members are described by its standard (JWKS, RFC 8414 metadata).
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct StandardDocument(serde_json::Value);

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = crate::routes::users::SignUp,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody),
        (status = 403, description = "sign-up is closed", body = ErrorBody),
        (status = 409, description = "username taken", body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn sign_up() {}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = crate::routes::auth::LoginRequest,
    responses((status = 200, body = crate::routes::TokenResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "one answer for every failure; `invalid_client` for a client that failed to authenticate", body = ErrorBody),
        (status = 429, description = "throttled; see Retry-After", body = ErrorBody),
        (status = 503, body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn login() {}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = crate::routes::auth::RefreshRequest,
    responses((status = 200, body = crate::routes::TokenResponse),
        (status = 400, description = "`invalid_grant` with a reason, or `invalid_request`", body = ErrorBody),
        (status = 429, description = "this session refreshes too often; nothing consumed", body = ErrorBody),
        (status = 503, body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn refresh() {}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body(content = Option<crate::routes::auth::LogoutRequest>),
    // The session scope answers 200 with nothing to end, like RFC 7009: credentials optional.
    security((), ("bearer" = [])),
    responses((status = 200, body = Ended), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn logout() {}

#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth", request_body(content = Option<crate::routes::auth::LogoutRequest>),
    security(("bearer" = [])),
    responses((status = 200, body = Ended), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn logout_all() {}

#[utoipa::path(get, path = "/v1/auth/verify", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "identity in `X-Auth-Sub`, `X-Auth-Sid`, `X-Auth-Client-Id`, `X-Auth-Roles`, `X-Auth-Scope`", body = Verified),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn verify() {}

#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn me() {}

#[utoipa::path(get, path = "/v1/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn list_sessions() {}

#[utoipa::path(delete, path = "/v1/auth/sessions/{sid}", tag = "sessions", security(("bearer" = [])),
    params(("sid" = String, Path, description = "a session id of the caller's")),
    responses((status = 204, description = "ended"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn end_own_session() {}

#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = crate::routes::TokenResponse),
        (status = 400, description = "RFC 6749 §5.2", body = ErrorBody),
        (status = 401, description = "`invalid_client`", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn oauth_token() {}

#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = TokenParameterForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "revoked, or nothing to revoke (RFC 7009 §2.2)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn oauth_revoke() {}

#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = TokenParameterForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Introspection), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn oauth_introspect() {}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "RFC 8414 metadata", body = StandardDocument)))]
fn oauth_metadata() {}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "the public signing keys (RFC 7517)", body = StandardDocument)))]
fn jwks() {}

#[utoipa::path(get, path = "/v1/revocations", tag = "revocations", security(("bearer" = [])),
    responses((status = 200, description = "the live revocation state; follow the stream from `cursor`", body = crate::routes::revocations::Snapshot),
        (status = 400, body = ErrorBody), (status = 401, description = "not the verifier (or admin) key", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
fn revocations_snapshot() {}

#[utoipa::path(get, path = "/v1/revocations/stream", tag = "revocations", security(("bearer" = [])),
    params(("cursor" = Option<i64>, Query, minimum = 0, description = "the cursor to follow from (the snapshot's); `Last-Event-ID` wins"),
        ("Last-Event-ID" = Option<String>, Header, description = "set by a reconnecting EventSource: the last cursor it saw (wins over `cursor`; anything else is ignored)")),
    responses((status = 200, description = "Server-Sent Events: `revocations` (data: cursor and entries) and `heartbeat` (data: cursor), each with the cursor as its id", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, description = "not the verifier (or admin) key", body = ErrorBody)))]
fn revocations_stream() {}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "not ready; the body says why", body = Health)))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text), unless `metrics_listen` moves them", content_type = "application/openmetrics-text")))]
fn metrics() {}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this document", body = StandardDocument)))]
fn openapi() {}

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(("after" = Option<String>, Query, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "a user id (lower-case UUID): the page after it"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000, default 100")),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_list_users() {}

#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    request_body = crate::routes::admin::CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn admin_create_user() {}

#[utoipa::path(get, path = "/v1/admin/users/{user}", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "user id or username")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_get_user() {}

#[utoipa::path(delete, path = "/v1/admin/users/{user}", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "user id or username")),
    responses((status = 204, description = "deleted, with everything the user held"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_delete_user() {}

#[utoipa::path(post, path = "/v1/admin/users/{user}/block", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "user id or username")),
    responses((status = 200, body = Ended), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_block() {}

#[utoipa::path(post, path = "/v1/admin/users/{user}/unblock", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "user id or username")),
    responses((status = 200, body = Ended), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_unblock() {}

#[utoipa::path(post, path = "/v1/admin/users/{user}/logout", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "user id or username")),
    responses((status = 200, body = Ended), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_force_logout() {}

#[utoipa::path(get, path = "/v1/admin/users/{user}/sessions", tag = "admin", security(("bearer" = [])),
    params(("user" = String, Path, description = "user id or username")),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_user_sessions() {}

#[utoipa::path(post, path = "/v1/admin/sessions", tag = "admin", security(("bearer" = [])),
    request_body = crate::routes::admin::MintSession,
    responses((status = 200, body = crate::routes::TokenResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the user is blocked", body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 413, description = "body over 16 KiB", body = ErrorBody),
        (status = 415, description = "the body must be JSON", body = ErrorBody)))]
fn admin_mint_session() {}

#[utoipa::path(delete, path = "/v1/admin/sessions/{sid}", tag = "admin", security(("bearer" = [])),
    params(("sid" = String, Path, description = "a session id")),
    responses((status = 204, description = "ended"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
fn admin_end_session() {}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Tessera", description = "Log in once, stay logged in safely, log out for real."),
    paths(sign_up, login, refresh, logout, logout_all, verify, me, list_sessions, end_own_session,
        oauth_token, oauth_revoke, oauth_introspect, oauth_metadata, jwks, revocations_snapshot,
        revocations_stream, healthz, readyz, metrics,
        openapi, admin_list_users, admin_create_user, admin_get_user, admin_delete_user, admin_block,
        admin_unblock, admin_force_logout, admin_user_sessions, admin_mint_session, admin_end_session),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/oauth/token"));
        assert!(doc["components"]["schemas"]["LoginRequest"]["properties"]
            .get("client_id")
            .is_some());
    }
}
