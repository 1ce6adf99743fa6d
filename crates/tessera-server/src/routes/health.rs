//! `/healthz`, `/readyz` and `/.well-known/jwks.json`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::revocations::TAIL_INTERVAL;
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the revocation log was read recently: that proves the store answers, and that
/// this process knows every revocation. Answered from memory, in microseconds.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let age = state.now().since(state.revocations.last_sync());
    let fresh = age <= TAIL_INTERVAL * 8 + Duration::from_secs(1);
    let status = if fresh {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if fresh { "ready" } else { "unavailable" },
        "checks": {
            "store": if fresh { "ok" } else { "the session store has not answered recently" },
            "keys": format!("{} signing key(s) loaded", state.keys.iter().count()),
            "revocations": { "entries": state.revocations.len(), "last_sync_ms_ago": age.as_millis() as u64 },
        }
    });
    (status, Json(body))
}

/// The public signing keys, from memory: available even while every store is down.
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.jwks.clone(),
    )
}
