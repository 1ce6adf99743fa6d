//! Request extractors whose rejections are [`ApiError`]s: JSON bodies, bearer tokens, client
//! metadata. Nothing a client sends can make these panic or answer 500.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::audit::ClientMeta;
use crate::error::ApiError;
use crate::state::AppState;

/// The largest request body accepted on any route.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON request body (`Content-Type: application/json` required).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            )
        }
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field and the problem ("missing field `password`").
            let text = e.body_text();
            let detail = text.rsplit(": ").next().unwrap_or("invalid JSON");
            ApiError::invalid_request(format!("invalid request body: {}", truncate(detail, 200)))
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::invalid_request("the body is not valid JSON")
        }
        _ => ApiError::invalid_request("the body could not be read"),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|j| ApiJson(j.0))
            .map_err(json_rejection)
    }
}

/// A JSON body that may be left out entirely: an empty body, or the JSON value `null`, means
/// `None`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let h = req.headers();
        let empty_length = h
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
        let no_body = !h.contains_key(header::CONTENT_TYPE)
            && !h.contains_key(header::TRANSFER_ENCODING)
            && empty_length;
        if no_body {
            return Ok(OptionalJson(None));
        }
        ApiJson::<Option<T>>::from_request(req, state)
            .await
            .map(|j| OptionalJson(j.0))
    }
}

/// The bearer token of the `Authorization` header (RFC 6750 §2.1), if any.
///
/// - the scheme is case-insensitive (`bearer` works);
/// - more than one `Authorization` header is a 400 (RFC 6750 §2: one method, once);
/// - a token in the URL (`?access_token=`) is never read.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let Ok(text) = value.to_str() else {
        return Ok(None);
    };
    let Some((scheme, token)) = text.split_once(' ') else {
        return Ok(None);
    };
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Ok(None);
    }
    Ok(Some(token.to_owned()))
}

/// The bearer token, required.
#[derive(Debug)]
pub struct Bearer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        bearer(&parts.headers)?
            .map(Bearer)
            .ok_or_else(ApiError::missing_token)
    }
}

/// The bearer token, if one was sent.
#[derive(Debug)]
pub struct MaybeBearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        bearer(&parts.headers).map(MaybeBearer)
    }
}

/// The client's address: the peer's, or, when the peer is one of the `trusted` proxies, the
/// rightmost address of `X-Forwarded-For` that is not a trusted proxy. Addresses left of that
/// are whatever the client wrote and are never believed.
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    // IPv4 peers of a dual-stack listener arrive as `::ffff:a.b.c.d`: compare canonical forms.
    let trusted = |ip: &IpAddr| {
        trusted
            .iter()
            .any(|t| t.to_canonical() == ip.to_canonical())
    };
    let mut address = peer?.to_canonical();
    if !trusted(&address) {
        return Some(address);
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in forwarded.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(hop) => {
                address = hop.to_canonical();
                if !trusted(&address) {
                    break;
                }
            }
            // Not an address: stop at the last hop a trusted proxy vouched for.
            Err(_) => break,
        }
    }
    Some(address)
}

impl FromRequestParts<AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = client_address(peer, &parts.headers, &state.settings.trusted_proxies)
            .map(|ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| truncate(ua, 256).to_owned());
        Ok(ClientMeta { ip, user_agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("header"),
            );
        }
        h
    }

    #[test]
    fn the_client_address_is_believed_from_trusted_proxies_only() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let xff = |v: &[&str]| {
            let mut h = HeaderMap::new();
            for v in v {
                h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
            }
            h
        };
        let lb = [ip("10.0.0.1"), ip("10.0.0.2")];
        let spoofed = xff(&["6.6.6.6"]);
        assert_eq!(
            client_address(Some(ip("198.51.100.9")), &spoofed, &lb),
            Some(ip("198.51.100.9")),
            "a client talking directly cannot choose its address"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &xff(&["6.6.6.6, 203.0.113.5"]), &lb),
            Some(ip("203.0.113.5")),
            "the rightmost untrusted hop, not what the client wrote on the left"
        );
        assert_eq!(
            client_address(
                Some(ip("10.0.0.1")),
                &xff(&["6.6.6.6", "203.0.113.5, 10.0.0.2"]),
                &lb
            ),
            Some(ip("203.0.113.5")),
            "through two trusted proxies, over several header lines"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &xff(&["garbage"]), &lb),
            Some(ip("10.0.0.1")),
            "nothing usable: the proxy itself"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &xff(&["2001:db8::7"]), &lb),
            Some(ip("2001:db8::7"))
        );
        assert_eq!(client_address(None, &spoofed, &lb), None);
        assert_eq!(
            client_address(Some(ip("::ffff:10.0.0.1")), &xff(&["203.0.113.5"]), &lb),
            Some(ip("203.0.113.5")),
            "a trusted IPv4 proxy seen through a dual-stack listener"
        );
    }

    #[test]
    fn bearer_rules() {
        assert_eq!(bearer(&headers(&[])).expect("none"), None);
        assert_eq!(
            bearer(&headers(&["Bearer abc"])).expect("ok"),
            Some("abc".into())
        );
        assert_eq!(
            bearer(&headers(&["bearer abc"])).expect("ok"),
            Some("abc".into()),
            "case-insensitive"
        );
        assert_eq!(
            bearer(&headers(&["Basic abc"])).expect("other scheme"),
            None
        );
        assert_eq!(bearer(&headers(&["Bearer "])).expect("empty"), None);
        assert_eq!(
            bearer(&headers(&["Bearer a", "Bearer b"])).map_err(|e| e.status()),
            Err(StatusCode::BAD_REQUEST)
        );
    }
}
