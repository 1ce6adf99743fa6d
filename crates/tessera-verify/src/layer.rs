//! The tower layer that guards routes with a [`Verifier`], and the axum extractor of the
//! verified claims.
//!
//! Answers follow RFC 6750 §3: no credentials → 401 with a bare `WWW-Authenticate: Bearer`;
//! a refused token → 401 with `error="invalid_token"` (or `token_expired`, so a client knows to
//! refresh) and a description; an undecidable one → 503 with `Retry-After`. Bodies are JSON
//! `{"error", "error_description"}` like Tessera's own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::access::AccessClaims;
use tower::{Layer, Service};

use crate::{Verifier, VerifyError};

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// No `Authorization: Bearer` credentials.
    Missing,
    /// More than one `Authorization` header, or not valid text.
    Malformed,
    /// The verifier's verdict.
    Refused(VerifyError),
    /// `Claims` used on a route with neither the layer nor a verifier extension.
    NotGuarded,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, challenge, code, description) = match self {
            Rejection::Missing => (
                StatusCode::UNAUTHORIZED,
                "Bearer".to_owned(),
                "invalid_token",
                "a bearer access token is required",
            ),
            Rejection::Malformed => (
                StatusCode::BAD_REQUEST,
                "Bearer error=\"invalid_request\"".to_owned(),
                "invalid_request",
                "malformed Authorization header",
            ),
            Rejection::Refused(VerifyError::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                String::new(),
                "temporarily_unavailable",
                "access tokens cannot be checked right now; retry shortly",
            ),
            Rejection::Refused(e) => {
                let description = match e {
                    VerifyError::Invalid(tessera_core::access::TokenError::Expired) => {
                        "the access token expired"
                    }
                    VerifyError::Revoked(_) => "the access token was revoked",
                    _ => "the access token is invalid",
                };
                (
                    StatusCode::UNAUTHORIZED,
                    // The challenge uses RFC 6750's registered code; the body says `token_expired`
                    // where that applies, as Tessera's own answers do.
                    format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
                    e.code(),
                    description,
                )
            }
            Rejection::NotGuarded => {
                tracing::error!(
                    "tessera_verify::Claims used without RequireBearer or an Extension(Verifier)"
                );
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    String::new(),
                    "server_error",
                    "the route is not configured to verify tokens",
                )
            }
        };
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if !challenge.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The bearer token of a request (RFC 6750 §2.1): `None` when there is none.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::Malformed);
    }
    let value = value.to_str().map_err(|_| Rejection::Malformed)?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    // The scheme is case-insensitive (RFC 9110 §11.1); another scheme is no bearer token.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(Rejection::Malformed);
    }
    Ok(Some(token))
}

async fn check(verifier: &Verifier, headers: &HeaderMap) -> Result<Arc<AccessClaims>, Rejection> {
    let token = bearer(headers)?.ok_or(Rejection::Missing)?;
    verifier.verify(token).await.map_err(Rejection::Refused)
}

/// A layer that lets through only requests with a live access token, and puts its claims in
/// the request's extensions (read them with [`Claims`]).
#[derive(Debug, Clone)]
pub struct RequireBearer {
    verifier: Verifier,
}

impl RequireBearer {
    /// Guards with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for RequireBearer {
    type Service = RequireBearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearerService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`RequireBearer`] wraps around a route.
#[derive(Debug, Clone)]
pub struct RequireBearerService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> Service<Request<Body>> for RequireBearerService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match check(&verifier, request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

/// The verified claims of the request's access token.
///
/// Filled by [`RequireBearer`]; on a route without the layer it verifies the token itself with
/// a verifier put in the extensions (`axum::Extension(verifier)`). Refusals are answered like
/// the layer answers them.
#[derive(Debug, Clone)]
pub struct Claims(pub Arc<AccessClaims>);

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        if let Some(claims) = parts.extensions.get::<Arc<AccessClaims>>() {
            return Ok(Claims(Arc::clone(claims)));
        }
        let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
            return Err(Rejection::NotGuarded.into_response());
        };
        check(&verifier, &parts.headers)
            .await
            .map(Claims)
            .map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn bearer_credentials_are_read_strictly() {
        assert_eq!(bearer(&headers(&[])), Ok(None));
        assert_eq!(bearer(&headers(&["Bearer abc"])), Ok(Some("abc")));
        assert_eq!(bearer(&headers(&["bearer  abc"])), Ok(Some("abc")));
        assert_eq!(bearer(&headers(&["Basic abc"])), Ok(None));
        assert_eq!(bearer(&headers(&["Bearer"])), Ok(None));
        assert_eq!(bearer(&headers(&["Bearer "])), Err(Rejection::Malformed));
        assert_eq!(bearer(&headers(&["Bearer a b"])), Err(Rejection::Malformed));
        assert_eq!(
            bearer(&headers(&["Bearer a", "Bearer b"])),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn rejections_carry_the_rfc_6750_challenge() {
        let missing = Rejection::Missing.into_response();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let expired = Rejection::Refused(VerifyError::Invalid(
            tessera_core::access::TokenError::Expired,
        ))
        .into_response();
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            expired.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"the access token expired\""
        );
        let revoked = Rejection::Refused(VerifyError::Revoked(None)).into_response();
        assert!(revoked.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("text")
            .starts_with("Bearer error=\"invalid_token\""));
        let stale = Rejection::Refused(VerifyError::Unavailable).into_response();
        assert_eq!(stale.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(stale.headers()[header::RETRY_AFTER], "1");
        assert!(stale.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
