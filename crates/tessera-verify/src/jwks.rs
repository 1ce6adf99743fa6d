//! Tessera's public keys: fetched at start, again when the document's `Cache-Control: max-age`
//! runs out, and — at most once per [`Config::jwks_min_refetch`](crate::Config) — when a token
//! names a key not yet held (a key rotation that this verifier has not seen yet).

use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant};

use tessera_core::jwk::PublicKeySet;

use crate::Shared;

/// Bounds on how long a fetched JWKS is used before it is fetched again.
const MIN_MAX_AGE: Duration = Duration::from_secs(5);
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);
/// Used when the document says nothing.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Waits between attempts while Tessera cannot be reached.
const RETRY: Duration = Duration::from_secs(1);

/// `max-age` of a `Cache-Control` value, if any (RFC 9111 §5.2.2.1).
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value
            .trim()
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

/// Fetches the JWKS once and installs its keys; one fetch at a time. Returns how long the
/// document may be used.
pub(crate) async fn fetch(shared: &Shared) -> Result<Duration, String> {
    let _one = shared.jwks_refetch.lock().await;
    fetch_locked(shared).await
}

/// [`fetch`], the lock already held.
async fn fetch_locked(shared: &Shared) -> Result<Duration, String> {
    let result = fetch_document(shared).await;
    // Stamped when the attempt ends, successful or not: the rate limit counts attempts.
    *shared
        .jwks_fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    let (keys, age) = result?;
    if keys.is_empty() {
        tracing::warn!("Tessera's JWKS holds no usable public key (is it signing with HS256?)");
    }
    let before = shared.keys();
    let removed = before.kids().any(|kid| keys.get(kid).is_none());
    *shared.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    if removed {
        // A key that left the JWKS (retired, or withdrawn after a leak) must not live on
        // through the memory of tokens it verified.
        shared.verified.clear();
    }
    shared
        .jwks_loaded
        .store(true, std::sync::atomic::Ordering::Release);
    shared.ready.notify_waiters();
    Ok(age)
}

async fn fetch_document(shared: &Shared) -> Result<(PublicKeySet, Duration), String> {
    let response = shared
        .http
        .get(shared.url("/.well-known/jwks.json"))
        .timeout(shared.config.request_timeout)
        .send()
        .await
        .map_err(|e| format!("JWKS request: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("JWKS request: status {}", response.status()));
    }
    let age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
    let doc: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("JWKS body: {e}"))?;
    let keys = PublicKeySet::from_jwks(&doc).ok_or("the JWKS is not a key set")?;
    Ok((keys, age))
}

/// Keeps the keys current for as long as the verifier lives.
pub(crate) async fn keep_current(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let wait = match fetch(&s).await {
            Ok(age) => age,
            Err(e) => {
                tracing::warn!(error = %e, "could not fetch Tessera's JWKS; retrying");
                RETRY
            }
        };
        drop(s);
        tokio::time::sleep(wait).await;
    }
}

/// The `kid` of a compact JWS's header, if it has one.
fn kid_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// `token` named a key not held: fetch the JWKS again, unless the last attempt was less than
/// `jwks_min_refetch` ago (made-up key ids cannot make the verifier hammer Tessera). Concurrent
/// callers share one fetch. Returns whether the key is held now.
pub(crate) async fn refetch_for_unknown_kid(shared: &Shared, token: &str) -> bool {
    let Some(kid) = kid_of(token) else {
        return false;
    };
    let _one = shared.jwks_refetch.lock().await;
    if shared.keys().get(&kid).is_some() {
        return true; // fetched by someone else while this call waited
    }
    let last = *shared
        .jwks_fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if last.is_some_and(|t| t.elapsed() < shared.config.jwks_min_refetch) {
        return false;
    }
    match fetch_locked(shared).await {
        Ok(_) => shared.keys().get(&kid).is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "could not refetch Tessera's JWKS");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age("Max-Age = 60 ,public"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(max_age("s-maxage=5"), None);
    }

    #[test]
    fn the_kid_is_read_from_the_header_only() {
        assert_eq!(
            kid_of("eyJhbGciOiJFZERTQSIsImtpZCI6ImFiYyJ9.e30.sig"),
            Some("abc".into())
        );
        assert_eq!(kid_of("eyJhbGciOiJFZERTQSJ9.e30.sig"), None);
        assert_eq!(kid_of("garbage"), None);
    }
}
