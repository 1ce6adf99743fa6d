//! `POST /oauth/introspect` (RFC 7662), for authenticated clients allowed to introspect.
//!
//! An access token is judged by exactly the check of `/v1/auth/verify` (`AppState::authenticate`),
//! so the two always agree. A refresh token is active when it is the current token of a live
//! session of the calling client. Anything else is `{"active": false}` and nothing more (§2.2).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::form::{authenticate_client, OAuthForm};
use crate::error::ApiError;
use crate::flows::refresh;
use crate::state::AppState;

pub(super) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Json<Value>, ApiError> {
    let client = authenticate_client(&state, &headers, &form)?;
    // §2.1: "the endpoint MUST also require some form of authorization" — a secret, and the
    // permission to introspect.
    if client.is_public() {
        return Err(ApiError::invalid_client(
            "introspection needs client authentication",
        ));
    }
    if !client.introspect {
        return Err(ApiError::unauthorized_client(
            "this client may not introspect tokens",
        ));
    }
    let token = form.require("token")?;
    match state.authenticate(token) {
        Ok(claims) => {
            let mut body = json!({
                "active": true,
                "token_type": "Bearer",
                "iss": claims.iss,
                "sub": claims.sub,
                "aud": claims.aud,
                "exp": claims.exp,
                "iat": claims.iat,
                "jti": claims.jti,
                "client_id": claims.client_id,
                "sid": claims.sid,
            });
            if let Some(scope) = &claims.scope {
                body["scope"] = scope.as_str().into();
            }
            if let Some(nbf) = claims.nbf {
                body["nbf"] = nbf.into();
            }
            if !claims.roles.is_empty() {
                body["roles"] = claims.roles.clone().into();
            }
            Ok(Json(body))
        }
        // Undecidable (the revocation state is stale): say so, never "inactive" or "active".
        Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => Err(e),
        Err(_) => match refresh::inspect(&state, token, &client.id).await? {
            Some((session, user)) => Ok(Json(json!({
                "active": true,
                "token_type": "refresh_token",
                "iss": state.rules.issuer,
                "sub": user.id.as_str(),
                "exp": session.expires_at().as_secs(),
                "iat": session.rotated_at.as_secs(),
                "client_id": session.client.client_id,
                "sid": session.id,
            }))),
            None => Ok(Json(json!({ "active": false }))),
        },
    }
}
