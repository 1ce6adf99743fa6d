//! The request format of the OAuth endpoints: `application/x-www-form-urlencoded` bodies (RFC 6749
//! §3.2, RFC 7009 §2.1, RFC 7662 §2.1) read strictly, and client credentials (RFC 6749 §2.3.1).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;

use crate::clients::{Client, Credentials};
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

/// A form body: each parameter at most once (RFC 6749 §3.1), empty values as if omitted.
#[derive(Debug, Default)]
pub struct OAuthForm(HashMap<String, String>);

impl OAuthForm {
    /// Parses a body. A repeated parameter is an `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let mut fields = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in form_urlencoded::parse(body) {
            // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than
            // once", empty or not.
            if !seen.insert(name.clone()) {
                return Err(ApiError::invalid_request(format!(
                    "the parameter {name:?} is repeated"
                )));
            }
            // §3.1: "Parameters sent without a value MUST be treated as if they were omitted."
            if !value.is_empty() {
                fields.insert(name.into_owned(), value.into_owned());
            }
        }
        Ok(Self(fields))
    }

    /// A form of the given parameters (from a JSON body that carries the same fields).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            if !value.is_empty() {
                form.0.insert((*name).to_owned(), (*value).to_owned());
            }
        }
        form
    }

    /// A parameter, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid_request(format!("the parameter {name:?} is missing")))
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // JSON or anything else is a malformed request here, not an unsupported media type: the
        // OAuth error vocabulary has `invalid_request` for it (SECURITY F3).
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body must be at most {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::invalid_request("the body could not be read")
            }
        })?;
        Self::parse(&body)
    }
}

/// The client credentials of a request: HTTP Basic (`client_secret_basic`), or `client_id` and
/// `client_secret` in the body (`client_secret_post`), or a bare `client_id` (a public client).
/// `Ok(None)`: the request names no client.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Option<Credentials>, ApiError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let basic = match (authorization.next(), authorization.next()) {
        (_, Some(_)) => {
            return Err(ApiError::invalid_request(
                "more than one Authorization header",
            ))
        }
        (Some(value), None) => basic_credentials(value.as_bytes())?,
        (None, None) => None,
    };
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    match basic {
        Some(basic) => {
            // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
            // each request." A `client_id` beside Basic is tolerated when it agrees.
            if body_secret.is_some() {
                return Err(ApiError::invalid_request(
                    "more than one client authentication method",
                ));
            }
            if body_id.is_some_and(|id| id != basic.id) {
                return Err(ApiError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(Some(basic))
        }
        None => match (body_id, body_secret) {
            (Some(id), secret) => Ok(Some(Credentials {
                id: id.to_owned(),
                secret: secret.map(str::to_owned),
            })),
            (None, Some(_)) => Err(ApiError::invalid_request("client_secret without client_id")),
            (None, None) => Ok(None),
        },
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1). Other
/// schemes are not client credentials (`Ok(None)`); a malformed Basic value is `invalid_client`.
fn basic_credentials(value: &[u8]) -> Result<Option<Credentials>, ApiError> {
    let text = std::str::from_utf8(value).unwrap_or_default();
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || ApiError::invalid_client("malformed Basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let (id, secret) = (form_decode(id), form_decode(secret));
    if id.is_empty() {
        return Err(malformed());
    }
    Ok(Some(Credentials {
        id,
        secret: Some(secret),
    }))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value (`+` is a space).
fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The client a request names and authenticates, if it names one; a failed authentication is
/// `invalid_client` (401).
pub fn named_client<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Option<&'s Client>, ApiError> {
    match client_credentials(headers, form)? {
        None => Ok(None),
        Some(credentials) => state
            .clients
            .authenticate(&credentials)
            .map(Some)
            .map_err(|_| ApiError::invalid_client("client authentication failed")),
    }
}

/// The authenticated client of a request, which must name one; any failure is `invalid_client`.
pub fn authenticate_client<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<&'s Client, ApiError> {
    named_client(state, headers, form)?
        .ok_or_else(|| ApiError::invalid_client("client authentication is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form(body: &str) -> OAuthForm {
        OAuthForm::parse(body.as_bytes()).expect("form")
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {value}")).expect("header"),
        );
        h
    }

    fn creds(id: &str, secret: Option<&str>) -> Option<Credentials> {
        Some(Credentials {
            id: id.into(),
            secret: secret.map(Into::into),
        })
    }

    #[test]
    fn forms_refuse_repeats_and_drop_empty_values() {
        let f = form("grant_type=refresh_token&scope=&refresh_token=a%2Bb+c");
        assert_eq!(f.get("grant_type"), Some("refresh_token"));
        assert_eq!(f.get("scope"), None, "empty is omitted");
        assert_eq!(f.get("refresh_token"), Some("a+b c"));
        assert!(f.require("token").is_err());
        let err = OAuthForm::parse(b"token=a&token=b").expect_err("repeated");
        assert_eq!(err.code(), "invalid_request");
        let err = OAuthForm::parse(b"token=&token=b").expect_err("repeated, once empty");
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn credentials_from_basic_post_or_a_bare_id() {
        let none = HeaderMap::new();
        assert_eq!(
            client_credentials(&basic("app", "s3cret"), &form("")).expect("basic"),
            creds("app", Some("s3cret"))
        );
        assert_eq!(
            client_credentials(&basic("my%20app", "a%3Ab+c"), &form("")).expect("encoded"),
            creds("my app", Some("a:b c")),
            "id and secret are form-encoded inside Basic"
        );
        assert_eq!(
            client_credentials(&none, &form("client_id=app&client_secret=s")).expect("post"),
            creds("app", Some("s"))
        );
        assert_eq!(
            client_credentials(&none, &form("client_id=spa")).expect("public"),
            creds("spa", None)
        );
        assert_eq!(client_credentials(&none, &form("")).expect("nothing"), None);
        assert_eq!(
            client_credentials(&basic("app", "s"), &form("client_id=app")).expect("agreeing id"),
            creds("app", Some("s"))
        );
    }

    #[test]
    fn conflicting_or_malformed_credentials_are_refused() {
        let none = HeaderMap::new();
        let code = |r: Result<Option<Credentials>, ApiError>| r.expect_err("refused").code();
        assert_eq!(
            code(client_credentials(
                &basic("app", "s"),
                &form("client_secret=s")
            )),
            "invalid_request",
            "two methods"
        );
        assert_eq!(
            code(client_credentials(
                &basic("app", "s"),
                &form("client_id=other")
            )),
            "invalid_request"
        );
        assert_eq!(
            code(client_credentials(&none, &form("client_secret=s"))),
            "invalid_request"
        );
        let mut garbage = HeaderMap::new();
        garbage.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(
            code(client_credentials(&garbage, &form(""))),
            "invalid_client"
        );
        let no_colon = base64::engine::general_purpose::STANDARD.encode("app");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {no_colon}")).expect("header"),
        );
        assert_eq!(code(client_credentials(&h, &form(""))), "invalid_client");
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(
            client_credentials(&bearer, &form("")).expect("not Basic"),
            None
        );
    }
}
