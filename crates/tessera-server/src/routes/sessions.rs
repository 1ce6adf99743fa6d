//! `GET /v1/auth/sessions`, `DELETE /v1/auth/sessions/{sid}`: a user's own sessions ("devices").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use tessera_core::ids::{SessionId, UserId};
use tessera_core::session::{RevokeReason, Session};

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::extract::Bearer;
use crate::routes::rfc3339;
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/sessions", get(list))
        .route("/v1/auth/sessions/{sid}", delete(end))
}

/// The view of a session shown to its user and to admins. No nonce, no key id.
pub fn session_json(s: &Session, current: Option<&SessionId>) -> Value {
    json!({
        "id": s.id,
        "current": current == Some(&s.id),
        "client_id": s.client.client_id,
        "user_agent": s.client.user_agent,
        "ip": s.client.ip,
        "created_at": rfc3339(s.created_at),
        "last_used_at": rfc3339(s.last_used_at),
        "expires_at": rfc3339(s.expires_at()),
    })
}

fn user_of(sub: &str) -> Result<UserId, ApiError> {
    sub.parse()
        .map_err(|_| ApiError::invalid_token("invalid_token", "the access token is invalid"))
}

async fn list(
    State(state): State<AppState>,
    Bearer(token): Bearer,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&token)?;
    let sessions = state
        .sessions
        .live_sessions(&user_of(&claims.sub)?, state.now())
        .await?;
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| session_json(s, Some(&claims.sid)))
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

async fn end(
    State(state): State<AppState>,
    Bearer(token): Bearer,
    client: ClientMeta,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let claims = state.authenticate(&token)?;
    let user_id = user_of(&claims.sub)?;
    let not_found = || ApiError::not_found("no such session");
    let sid: SessionId = sid.parse().map_err(|_| not_found())?;
    // Only the caller's own sessions: someone else's looks exactly like an unknown one.
    match state.sessions.session(&sid).await? {
        Some(s) if s.user_id == user_id => {}
        _ => return Err(not_found()),
    }
    state.end_session(sid, RevokeReason::Logout).await?;
    state.audit(
        "session_ended",
        Some(user_id.as_str()),
        Some(&sid),
        &client,
        "by_user",
    );
    Ok(StatusCode::NO_CONTENT)
}
