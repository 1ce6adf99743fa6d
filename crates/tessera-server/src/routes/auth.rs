//! `/v1/auth/login`, `/v1/auth/refresh`, `/v1/auth/logout`, `/v1/auth/logout-all`.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::audit::ClientMeta;
use crate::error::{ApiError, REFRESH_OUTCOME};
use crate::extract::{ApiJson, MaybeBearer, OptionalJson};
use crate::flows::logout::Scope;
use crate::flows::refresh::RefreshError;
use crate::flows::{login, logout, refresh};
use crate::routes::TokenResponse;
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login_handler))
        .route("/v1/auth/refresh", post(refresh_handler))
        .route("/v1/auth/logout", post(logout_handler))
        .route("/v1/auth/logout-all", post(logout_all_handler))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login_handler(
    State(state): State<AppState>,
    client: ClientMeta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<TokenResponse, ApiError> {
    let (issued, _) = login::login(&state, &req.username, req.password, &client).await?;
    Ok(TokenResponse::new(issued, state.now()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
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
    match refresh::refresh(
        &state,
        &req.refresh_token,
        req.access_token.as_deref(),
        &client,
    )
    .await
    {
        Ok((issued, decision)) => {
            let mut response = TokenResponse::new(issued, state.now()).into_response();
            response.headers_mut().insert(
                HeaderName::from_static(REFRESH_OUTCOME),
                HeaderValue::from_static(decision.outcome()),
            );
            Ok(response)
        }
        Err(RefreshError::Refused(refusal)) => Err(ApiError::invalid_grant(refusal)),
        Err(RefreshError::AccessTokenMismatch) => Err(ApiError::invalid_request(
            "the access token does not belong to the refresh token's session",
        )),
        Err(RefreshError::Api(e)) => Err(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
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
