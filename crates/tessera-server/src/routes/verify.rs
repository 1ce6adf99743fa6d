//! `/v1/auth/verify` (for nginx `auth_request` and forward-auth gateways) and `/v1/auth/me`.
//!
//! `verify` answers 200 with identity headers, or 401 with `WWW-Authenticate`; never 404 or 5xx
//! for bad client input, because nginx turns any status other than 2xx/401/403 into a 500.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use tessera_core::ids::UserId;

use crate::error::ApiError;
use crate::extract::Bearer;
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        // Any method: nginx's subrequest keeps the method of the original request.
        .route("/v1/auth/verify", any(verify))
        .route("/v1/auth/me", get(me))
}

async fn verify(
    State(state): State<AppState>,
    Bearer(token): Bearer,
) -> Result<(HeaderMap, Json<Value>), ApiError> {
    let claims = state.authenticate(&token)?;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-auth-sub", &claims.sub);
    set("x-auth-sid", &claims.sid.to_string());
    set("x-auth-client-id", &claims.client_id);
    set("x-auth-roles", &claims.roles.join(","));
    if let Some(scope) = &claims.scope {
        set("x-auth-scope", scope);
    }
    let body = json!({ "active": true, "sub": claims.sub, "sid": claims.sid, "exp": claims.exp });
    Ok((headers, Json(body)))
}

async fn me(State(state): State<AppState>, Bearer(token): Bearer) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&token)?;
    let user_id: UserId = claims
        .sub
        .parse()
        .map_err(|_| ApiError::invalid_token("invalid_token", "the access token is invalid"))?;
    let username = state.users.user_by_id(&user_id).await?.map(|u| u.username);
    Ok(Json(json!({
        "sub": claims.sub,
        "username": username,
        "sid": claims.sid,
        "client_id": claims.client_id,
        "roles": claims.roles,
        "scope": claims.scope,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
    })))
}
