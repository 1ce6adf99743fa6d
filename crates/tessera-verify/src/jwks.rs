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

/// Fetches the JWKS once and installs its keys. Returns how long it may be used.
pub(crate) async fn fetch(shared: &Shared) -> Result<Duration, String> {
    *shared
        .jwks_fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
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
    if keys.is_empty() {
        tracing::warn!("Tessera's JWKS holds no usable public key (is it signing with HS256?)");
    }
    *shared.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    shared.ready.notify_waiters();
    Ok(age)
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

/// A token named a key not held: fetch the JWKS again, unless that was done less than
/// `jwks_min_refetch` ago. Concurrent callers share one fetch. Returns whether keys were fetched
/// (by this call or one it waited for).
pub(crate) async fn refetch_for_unknown_kid(shared: &Shared) -> bool {
    let last = *shared
        .jwks_fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let _one = shared.jwks_refetch.lock().await;
    let now_last = *shared
        .jwks_fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if now_last != last {
        return true; // someone fetched while this call waited
    }
    if last.is_some_and(|t| t.elapsed() < shared.config.jwks_min_refetch) {
        return false;
    }
    match fetch(shared).await {
        Ok(_) => true,
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
}
