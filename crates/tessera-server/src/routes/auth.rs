//! `/v1/auth/login`, `/v1/auth/refresh`, `/v1/auth/logout`, `/v1/auth/logout-all`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::extract::{ApiJson, MaybeBearer, OptionalJson};
use crate::flows::logout::Scope;
use crate::flows::refresh::Refresher;
use crate::flows::{login, logout, refresh};
use crate::routes::oauth::form::{named_client, OAuthForm};
use crate::routes::{refresh_answer, TokenResponse};
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login_handler))
        .route("/v1/auth/refresh", post(refresh_handler))
        .route("/v1/auth/logout", post(logout_handler))
        .route("/v1/auth/logout-all", post(logout_all_handler))
}

/// A password login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    /// At most 1 KiB.
    #[schema(max_length = 1024)]
    password: String,
    /// The OAuth client the session is for (default: the first-party client). A confidential
    /// client authenticates with `client_secret` or HTTP Basic.
    #[serde(default)]
    #[schema(min_length = 1)]
    client_id: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1)]
    client_secret: Option<String>,
}

async fn login_handler(
    State(state): State<AppState>,
    client: ClientMeta,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<TokenResponse, ApiError> {
    let client_id = login_client(&state, &headers, &req)?;
    let (issued, _) =
        login::login(&state, &req.username, req.password, &client_id, &client).await?;
    Ok(TokenResponse::new(issued, state.now()))
}

/// The client a login starts a session for: the first-party client unless the request names
/// (and, for a confidential client, authenticates) another.
fn login_client(
    state: &AppState,
    headers: &HeaderMap,
    req: &LoginRequest,
) -> Result<String, ApiError> {
    let mut form = Vec::new();
    if let Some(id) = &req.client_id {
        form.push(("client_id", id.as_str()));
    }
    if let Some(secret) = &req.client_secret {
        form.push(("client_secret", secret.as_str()));
    }
    let form = OAuthForm::from_pairs(&form);
    Ok(named_client(state, headers, &form)?
        .map_or(state.clients.first_party(), |c| c.id.as_str())
        .to_owned())
}

/// A refresh.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
    /// The access token issued with it, optionally (seed 000's reissue sends both).
    #[serde(default)]
    access_token: Option<String>,
}

async fn refresh_handler(
    State(state): State<AppState>,
    client: ClientMeta,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let result = refresh::refresh(
        &state,
        &req.refresh_token,
        req.access_token.as_deref(),
        Refresher::Unauthenticated,
        &client,
    )
    .await;
    refresh_answer(&state, result)
}

/// What to log out of.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogoutRequest {
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    refresh_token: Option<String>,
}

async fn logout_handler(
    State(state): State<AppState>,
    MaybeBearer(bearer): MaybeBearer,
    client: ClientMeta,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.unwrap_or_default();
    let ended = logout::logout(
        &state,
        bearer.as_deref(),
        body.refresh_token.as_deref(),
        body.scope,
        &client,
    )
    .await?;
    Ok(Json(serde_json::json!({ "sessions_ended": ended })))
}

async fn logout_all_handler(
    State(state): State<AppState>,
    MaybeBearer(bearer): MaybeBearer,
    client: ClientMeta,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    let ended = logout::logout(
        &state,
        bearer.as_deref(),
        refresh_token.as_deref(),
        Scope::All,
        &client,
    )
    .await?;
    Ok(Json(serde_json::json!({ "sessions_ended": ended })))
}
