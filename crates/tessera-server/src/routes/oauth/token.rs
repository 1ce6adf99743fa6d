//! `POST /oauth/token`: the `refresh_token` grant (RFC 6749 §6), with the rotation, grace retry
//! and reuse detection of `/v1/auth/refresh`, bound to the authenticated client.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::form::{authenticate_client, OAuthForm};
use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::flows::refresh::{self, Refresher};
use crate::routes::refresh_answer;
use crate::state::AppState;

pub(super) async fn token(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    // RFC 9700 §2.4: no password grant; every other grant is unsupported, not merely refused.
    match form.require("grant_type")? {
        "refresh_token" => {}
        _ => return Err(ApiError::unsupported_grant_type()),
    }
    let client = authenticate_client(&state, &headers, &form)?;
    let refresh_token = form.require("refresh_token")?;
    // Sessions carry no scope, so any requested scope exceeds what was granted (RFC 6749 §6:
    // "MUST NOT include any scope not originally granted").
    if form.get("scope").is_some() {
        return Err(ApiError::invalid_scope(
            "the session was granted no scope; omit the scope parameter",
        ));
    }
    let result = refresh::refresh(
        &state,
        refresh_token,
        None,
        Refresher::Client(&client.id),
        &meta,
    )
    .await;
    refresh_answer(&state, result)
}
