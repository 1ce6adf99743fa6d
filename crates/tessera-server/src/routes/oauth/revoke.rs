//! `POST /oauth/revoke` (RFC 7009): a refresh token ends its session and the session's access
//! tokens; an access token is denied until it expires. Unknown tokens answer 200 (§2.2); a store
//! failure answers 503, never 200 (§2.2.1), so the client knows to retry.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tessera_core::refresh::RefreshToken;

use super::form::{authenticate_client, OAuthForm};
use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::flows::logout::{self, Revoked};
use crate::state::AppState;

pub(super) async fn revoke(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<StatusCode, ApiError> {
    let client = authenticate_client(&state, &headers, &form)?;
    let token = form.require("token")?;
    // `token_type_hint` is only a hint (§2.1): the token's own format says what it is, so a
    // wrong or unknown hint changes nothing.
    let revoked = match RefreshToken::parse(token) {
        Ok(refresh) => logout::revoke_refresh(&state, &refresh, &client.id, &meta).await?,
        Err(_) => match state.authentic_claims(token) {
            Some(claims) => logout::revoke_access(&state, &claims, &client.id, &meta).await?,
            None => Revoked::Unknown,
        },
    };
    match revoked {
        // §2.1: the server "verifies whether the token was issued to the client making the
        // revocation request. If this validation fails, the request is refused".
        Revoked::OtherClient => Err(ApiError::unauthorized_client(
            "the token was not issued to this client",
        )),
        Revoked::Done | Revoked::Unknown => Ok(StatusCode::OK),
    }
}
