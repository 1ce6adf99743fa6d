//! The one API error type. Every failure a client sees is JSON `{"error", "error_description"}`
//! with a stable code (DESIGN §3); 401s for bearer tokens carry `WWW-Authenticate` (RFC 6750 §3);
//! store faults are 503 with `Retry-After`; internal error text never reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tessera_core::access::TokenError;
use tessera_core::decision::Refusal;
use tessera_core::validity::Dead;
use tessera_store::StoreError;

/// Header naming the outcome of a refresh (`rotated`, `grace_retry`, `reused`, …).
pub const REFRESH_OUTCOME: &str = "tessera-refresh-outcome";

/// An error answer: status, stable code, description, and extra headers.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
    reason: Option<&'static str>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    store_fault: bool,
}

impl ApiError {
    /// An error with a status, a stable code and a human description.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            reason: None,
            headers: Vec::new(),
            store_fault: false,
        }
    }

    fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 with a bare challenge: no credentials were sent (RFC 6750 §3.1: no error attribute).
    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a bearer access token is required",
        )
        .header(header::WWW_AUTHENTICATE, "Bearer realm=\"tessera\"")
    }

    /// 401 for a bearer token that is not (or no longer) valid.
    pub fn invalid_token(code: &'static str, description: &str) -> Self {
        let challenge = format!(
            "Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"{description}\""
        );
        Self::new(StatusCode::UNAUTHORIZED, code, description)
            .header(header::WWW_AUTHENTICATE, &challenge)
    }

    /// 401 `invalid_credentials`: the same answer for unknown user, wrong password and blocked user.
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid username or password",
        )
    }

    /// 403 `insufficient_scope`.
    pub fn insufficient_scope(description: &str) -> Self {
        let challenge = format!(
            "Bearer realm=\"tessera\", error=\"insufficient_scope\", error_description=\"{description}\""
        );
        Self::new(StatusCode::FORBIDDEN, "insufficient_scope", description)
            .header(header::WWW_AUTHENTICATE, &challenge)
    }

    /// 401 `invalid_client` (RFC 6749 §5.2): the client is unknown, or its authentication is
    /// missing or wrong. Always with a `Basic` challenge, the scheme a client can answer with.
    pub fn invalid_client(description: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"tessera\"")
    }

    /// 400 `unauthorized_client` (RFC 6749 §5.2): an authenticated client may not do this.
    pub fn unauthorized_client(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// 400 `unsupported_grant_type` (RFC 6749 §5.2).
    pub fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=refresh_token is supported; log in with POST /v1/auth/login",
        )
    }

    /// 400 `invalid_scope` (RFC 6749 §5.2).
    pub fn invalid_scope(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// 404 `not_found`.
    pub fn not_found(description: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }

    /// 429 `too_many_requests` for login attempts, with `Retry-After`.
    pub fn too_many_requests(wait: std::time::Duration) -> Self {
        Self::throttled("too many login attempts; retry later", wait)
    }

    /// 429 `too_many_requests` for a session refreshed more often than its limit allows.
    pub fn too_many_refreshes(wait: std::time::Duration) -> Self {
        Self::throttled(
            "this session is refreshed too often; retry later with the same refresh token",
            wait,
        )
    }

    /// 429 `too_many_requests` with `Retry-After` (whole seconds, rounded up, at least 1).
    fn throttled(description: &str, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            description,
        )
        .header(header::RETRY_AFTER, &secs.max(1).to_string())
    }

    /// 503 `temporarily_unavailable` with `Retry-After`: retry, nothing was decided.
    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the token store is unavailable; nothing was changed, retry shortly",
        )
        .header(header::RETRY_AFTER, "1");
        e.store_fault = true;
        e
    }

    /// 500 `server_error`, with an opaque body; the cause is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }

    /// 400 `invalid_grant` for a refused refresh, with its reason and outcome.
    pub fn invalid_grant(refusal: Refusal) -> Self {
        let description = match refusal {
            Refusal::Invalid => "the refresh token is invalid",
            Refusal::Reuse => "the refresh token was already used; the session has been revoked",
            Refusal::Dead(Dead::SessionExpired) => "the session has expired; log in again",
            Refusal::Dead(Dead::UserBlocked) => "the user is blocked",
            Refusal::Dead(_) => "the session has been revoked; log in again",
        };
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description).header(
            header::HeaderName::from_static(REFRESH_OUTCOME),
            refusal.outcome(),
        );
        e.reason = Some(refusal.reason());
        e
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let description = match e {
            TokenError::Expired => "the access token expired",
            TokenError::Jws(tessera_core::jws::JwsError::Oversize) => {
                "the access token is too long"
            }
            _ => "the access token is invalid",
        };
        ApiError::invalid_token(e.code(), description)
    }
}

impl From<Dead> for ApiError {
    fn from(dead: Dead) -> Self {
        let description = match dead {
            Dead::TokenDenied => "the access token was revoked",
            Dead::UserBlocked => "the user is blocked",
            _ => "the session of this access token was revoked",
        };
        ApiError::invalid_token("invalid_token", description)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::new(StatusCode::CONFLICT, "conflict", what),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                ApiError::unavailable()
            }
            StoreError::Backend(cause) => {
                tracing::error!(error = %cause, "store failure");
                ApiError::unavailable()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body =
            serde_json::json!({ "error": self.code, "error_description": self.description });
        if let Some(reason) = self.reason {
            body["reason"] = reason.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.store_fault {
            response
                .extensions_mut()
                .insert(crate::metrics::StoreUnavailable);
        }
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
