//! `/v1/admin/…`: force logout, block and unblock, sessions of any user, user management, and
//! minting a session for a subject authenticated elsewhere.
//!
//! Authentication: `Authorization: Bearer <admin API key>` (compared in constant time), or a live
//! access token whose user has the `admin` role. With no admin key configured, only the role
//! works; the API is never open.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_core::ids::{SessionId, UserId};
use tessera_core::session::RevokeReason;

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::extract::{bearer, ApiJson};
use crate::flows::{login, users};
use crate::routes::sessions::session_json;
use crate::routes::users::user_json;
use crate::routes::TokenResponse;
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/users", get(list_users).post(create_user))
        .route("/v1/admin/users/{user}", get(get_user).delete(delete_user))
        .route("/v1/admin/users/{user}/block", post(block))
        .route("/v1/admin/users/{user}/unblock", post(unblock))
        .route("/v1/admin/users/{user}/logout", post(force_logout))
        .route("/v1/admin/users/{user}/sessions", get(user_sessions))
        .route("/v1/admin/sessions", post(mint_session))
        .route("/v1/admin/sessions/{sid}", delete(end_session))
}

/// Who is acting as admin, for the audit log.
#[derive(Debug)]
pub struct Admin(String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?.ok_or_else(ApiError::missing_token)?;
        if state.is_admin_key(&token) {
            return Ok(Admin("api_key".into()));
        }
        // Not the key: perhaps an access token of an admin user. JWTs have two dots; keys none.
        if token.matches('.').count() != 2 {
            return Err(ApiError::invalid_token(
                "invalid_token",
                "invalid admin credentials",
            ));
        }
        let claims = state.authenticate(&token)?;
        if claims.roles.iter().any(|r| r == "admin") {
            Ok(Admin(claims.sub.clone()))
        } else {
            Err(ApiError::insufficient_scope("the admin role is required"))
        }
    }
}

fn log(
    state: &AppState,
    kind: &'static str,
    admin: &Admin,
    user: Option<&UserId>,
    sid: Option<&SessionId>,
    client: &ClientMeta,
) {
    let outcome = format!("by {}", admin.0);
    state.audit(kind, user.map(UserId::as_str), sid, client, &outcome);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_users(
    State(state): State<AppState>,
    _: Admin,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let after = match page.after {
        Some(text) => Some(
            text.parse::<UserId>()
                .map_err(|_| ApiError::invalid_request("`after` must be a user id"))?,
        ),
        None => None,
    };
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_request("`limit` must be 1 to 1000"));
    }
    let users = state.users.list_users(after.as_ref(), limit).await?;
    Ok(Json(
        json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() }),
    ))
}

/// A user created by an admin.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// 3 to 64 letters, digits and `. _ @ + -`.
    #[schema(min_length = 3, max_length = 64, pattern = "^[A-Za-z0-9._@+-]{3,64}$")]
    username: String,
    /// 8 characters to 1 KiB; none: the user logs in through minted sessions only.
    #[schema(min_length = 8, max_length = 1024)]
    password: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create_user(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = login::create_user(&state, &req.username, req.password, req.roles).await?;
    log(
        &state,
        "user_created",
        &admin,
        Some(&user.id),
        None,
        &client,
    );
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

async fn get_user(
    State(state): State<AppState>,
    _: Admin,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = users::resolve(&state, &key).await?;
    let live = state
        .sessions
        .live_sessions(&user.id, state.now())
        .await?
        .len();
    let mut body = user_json(&user);
    body["live_sessions"] = live.into();
    Ok(Json(body))
}

async fn delete_user(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = users::resolve(&state, &key).await?;
    users::delete(&state, &user).await?;
    log(
        &state,
        "user_deleted",
        &admin,
        Some(&user.id),
        None,
        &client,
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn block(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = users::resolve(&state, &key).await?;
    let ended = users::block(&state, &user).await?;
    log(
        &state,
        "user_blocked",
        &admin,
        Some(&user.id),
        None,
        &client,
    );
    Ok(Json(json!({ "blocked": true, "sessions_ended": ended })))
}

async fn unblock(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = users::resolve(&state, &key).await?;
    users::unblock(&state, &user).await?;
    log(
        &state,
        "user_unblocked",
        &admin,
        Some(&user.id),
        None,
        &client,
    );
    Ok(Json(json!({ "blocked": false })))
}

async fn force_logout(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = users::resolve(&state, &key).await?;
    let ended = users::force_logout(&state, &user).await?;
    log(
        &state,
        "forced_logout",
        &admin,
        Some(&user.id),
        None,
        &client,
    );
    Ok(Json(json!({ "sessions_ended": ended })))
}

async fn user_sessions(
    State(state): State<AppState>,
    _: Admin,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = users::resolve(&state, &key).await?;
    let sessions = state.sessions.live_sessions(&user.id, state.now()).await?;
    Ok(Json(
        json!({ "sessions": sessions.iter().map(|s| session_json(s, None)).collect::<Vec<_>>() }),
    ))
}

async fn end_session(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let sid: SessionId = sid
        .parse()
        .map_err(|_| ApiError::not_found("no such session"))?;
    let session = state
        .sessions
        .session(&sid)
        .await?
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    state.end_session(sid, RevokeReason::AdminRevoked).await?;
    log(
        &state,
        "session_ended",
        &admin,
        Some(&session.user_id),
        Some(&sid),
        &client,
    );
    Ok(StatusCode::NO_CONTENT)
}

/// A session minted for a subject authenticated elsewhere.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintSession {
    /// User id or username (3 to 64 letters, digits and `. _ @ + -`).
    #[schema(min_length = 3, max_length = 64, pattern = "^[A-Za-z0-9._@+-]{3,64}$")]
    user: String,
    /// Create a password-less user of that name if none exists.
    #[serde(default)]
    create: bool,
    /// The registered client the session is for; default the first-party client.
    #[schema(min_length = 1)]
    client_id: Option<String>,
}

/// Mints a session for a subject that authenticated elsewhere (SSO, another identity provider).
async fn mint_session(
    State(state): State<AppState>,
    admin: Admin,
    client: ClientMeta,
    ApiJson(req): ApiJson<MintSession>,
) -> Result<TokenResponse, ApiError> {
    let user = match users::resolve(&state, &req.user).await {
        Ok(user) => user,
        Err(e) if e.status() == StatusCode::NOT_FOUND && req.create => {
            login::create_user(&state, &req.user, None, Vec::new()).await?
        }
        Err(e) => return Err(e),
    };
    if user.blocked {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "user_blocked",
            "the user is blocked",
        ));
    }
    let client_id = req
        .client_id
        .as_deref()
        .unwrap_or(&state.settings.client_id);
    // Only a registered client can refresh the session afterwards.
    if state.clients.get(client_id).is_none() {
        return Err(ApiError::invalid_request(
            "client_id names no registered client",
        ));
    }
    let Some(issued) = login::start_session(&state, &user, client_id, &client).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "user_blocked",
            "the user is blocked",
        ));
    };
    log(
        &state,
        "session_minted",
        &admin,
        Some(&user.id),
        Some(&issued.claims.sid),
        &client,
    );
    Ok(TokenResponse::new(issued, state.now()))
}
