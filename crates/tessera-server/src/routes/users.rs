//! `POST /v1/users`: sign-up.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_store::User;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::flows::login;
use crate::routes::rfc3339;
use crate::state::AppState;

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/users", post(sign_up))
}

/// A sign-up.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUp {
    /// 3 to 64 letters, digits and `. _ @ + -`.
    #[schema(min_length = 3, max_length = 64, pattern = "^[A-Za-z0-9._@+-]{3,64}$")]
    username: String,
    /// 8 characters to 1 KiB.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// The public view of a user.
pub fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "roles": user.roles,
        "blocked": user.blocked,
        "created_at": rfc3339(user.created_at),
    })
}

async fn sign_up(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignUp>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !state.settings.signup {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "signup_disabled",
            "sign-up is closed on this server",
        ));
    }
    let user = login::create_user(&state, &req.username, Some(req.password), Vec::new()).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}
