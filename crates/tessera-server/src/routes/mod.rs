//! The HTTP API. Each resource has its file and its `router()`.

pub mod admin;
pub mod auth;
pub mod health;
pub mod oauth;
pub mod openapi;
pub mod revocations;
pub mod sessions;
pub mod users;
pub mod verify;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tessera_core::decision::Decision;
use tessera_core::Timestamp;

use crate::error::{ApiError, REFRESH_OUTCOME};
use crate::flows::refresh::RefreshError;
use crate::state::{AppState, Issued};

/// The answer to login, refresh and admin session minting.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The access token (JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if unused.
    pub refresh_token_expires_in: i64,
    /// The session id.
    pub session_id: String,
    /// The user id.
    pub user_id: String,
}

impl TokenResponse {
    /// The response body for `issued` at `now`.
    pub fn new(issued: Issued, now: Timestamp) -> Self {
        Self {
            expires_in: issued.claims.exp - issued.claims.iat,
            refresh_token_expires_in: (issued.refresh_expires_at.as_millis() - now.as_millis())
                .max(0)
                / 1000,
            session_id: issued.claims.sid.to_string(),
            user_id: issued.claims.sub.clone(),
            access_token: issued.access_token,
            token_type: "Bearer",
            refresh_token: issued.refresh_token,
        }
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        // RFC 6749 §5.1: responses carrying tokens are never cached.
        let mut response = Json(self).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// The answer to a refresh, on `/v1/auth/refresh` and `/oauth/token` alike: the new pair and the
/// outcome header, or `invalid_grant` with its reason.
pub fn refresh_answer(
    state: &AppState,
    result: Result<(Issued, Decision), RefreshError>,
) -> Result<Response, ApiError> {
    match result {
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
        Err(RefreshError::Api(e)) => {
            if e.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
                state.metrics.refresh_unavailable();
            }
            Err(e)
        }
    }
}

/// RFC 3339 text of a timestamp (seconds precision, UTC).
pub fn rfc3339(t: Timestamp) -> String {
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.as_millis().max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}
