//! The standard OAuth 2.0 surface over the same engine as `/v1/auth/*` (DESIGN §3):
//! `/oauth/token` (the `refresh_token` grant, RFC 6749 §6), `/oauth/revoke` (RFC 7009),
//! `/oauth/introspect` (RFC 7662) and the server metadata (RFC 8414).
//!
//! There is no `password` grant (RFC 9700 §2.4): users log in at `/v1/auth/login`, naming the
//! client the session is for; that client then refreshes here.

pub mod form;
mod introspect;
mod revoke;
mod token;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/introspect", post(introspect::introspect))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

/// RFC 8414 §2: exactly what is supported. The endpoint URLs hang off the issuer, which must
/// then be the public base URL of the service for clients that discover endpoints.
async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let issuer = state.rules.issuer.trim_end_matches('/');
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let body = json!({
        "issuer": state.rules.issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "grant_types_supported": ["refresh_token"],
        // No authorization endpoint: sessions start at /v1/auth/login.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body))
}
