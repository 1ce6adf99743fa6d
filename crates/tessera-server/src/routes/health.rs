//! `/healthz`, `/readyz`, `/metrics` and `/.well-known/jwks.json`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

/// `/metrics`: on the main listener, or alone on `metrics_listen` when that is set.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus metrics in the OpenMetrics text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.refresh_live_sessions(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&state),
    )
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the revocation log was read within the last few seconds: that proves the store
/// answers, and that this process knows every revocation. `degraded` (still 200) when a cache in
/// front of the store is down. Answered from memory.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let body =
            json!({ "status": "draining", "checks": { "shutdown": "the server is stopping" } });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let fresh = state.revocations.is_fresh();
    let age = state.revocations.sync_age().map(|a| a.as_millis() as u64);
    let status = if fresh {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // A cache that is down leaves the service ready (it serves from the source of truth).
    let degraded = state.sessions.degraded();
    let label = match (fresh, degraded) {
        (false, _) => "unavailable",
        (true, Some(_)) => "degraded",
        (true, None) => "ready",
    };
    let body = json!({
        "status": label,
        "checks": {
            "cache": degraded.unwrap_or("ok"),
            "store": if fresh { "ok" } else { "the session store has not answered recently" },
            "keys": format!("{} signing key(s) loaded", state.keys().signing.iter().count()),
            "revocations": { "entries": state.revocations.len(), "last_sync_ms_ago": age },
        }
    });
    (status, Json(body))
}

/// The public signing keys, from memory: available even while every store is down.
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // A rotation publishes a key this long before it signs (`tessera keys rotate`), so a cache
    // that honours max-age always holds the key of any token it sees.
    let cache = format!("public, max-age={}", state.settings.jwks_max_age.as_secs());
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CACHE_CONTROL, cache),
        ],
        state.keys().jwks.clone(),
    )
}
