//! Following Tessera's revocation feed: load the snapshot, follow the stream from its cursor,
//! and on any break (stream ended, silent for too long, Tessera restarted, an error) start over
//! with a fresh snapshot after a short backoff. Entries are only ever added to the copy, so a
//! snapshot merged over it, or an entry delivered twice, changes nothing that was right.

use std::sync::atomic::Ordering;
use std::sync::{PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tessera_core::revocation::RevocationEntry;
use tessera_core::{Clock as _, SystemClock};

use crate::sse::SseParser;
use crate::{Shared, VerifyError};

/// First and longest wait before reconnecting.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often expired entries are dropped from the copy.
const PURGE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct Snapshot {
    cursor: u64,
    entries: Vec<RevocationEntry>,
    leeway_secs: u64,
    access_ttl_secs: u64,
}

#[derive(Debug, Deserialize)]
struct Batch {
    cursor: u64,
    entries: Vec<RevocationEntry>,
}

/// Follows the feed for as long as the verifier lives.
pub(crate) async fn follow(shared: Weak<Shared>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let Some(s) = shared.upgrade() else { return };
        let started = Instant::now();
        match connection(&s).await {
            Ok(()) => tracing::debug!("revocation feed ended; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "revocation feed broke; reconnecting"),
        }
        drop(s);
        // A connection that lived a while earns a quick reconnect; repeated failures back off.
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_FIRST;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn apply(shared: &Shared, entries: &[RevocationEntry], cursor: u64) {
    {
        let mut set = shared
            .revocations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in entries {
            set.apply(entry);
        }
    }
    shared.cursor.store(cursor, Ordering::Release);
}

fn purge(shared: &Shared) {
    shared
        .revocations
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .purge(SystemClock.now());
}

/// One connection: snapshot, then the stream until it ends or breaks.
async fn connection(shared: &Shared) -> Result<(), String> {
    let key = &shared.config.verifier_key;
    let response = shared
        .http
        .get(shared.url("/v1/revocations"))
        .bearer_auth(key)
        .timeout(shared.config.request_timeout)
        .send()
        .await
        .map_err(|e| format!("snapshot request: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("snapshot request: status {}", response.status()));
    }
    let snapshot: Snapshot = response
        .json()
        .await
        .map_err(|e| format!("snapshot body: {e}"))?;
    shared.adopt(
        Duration::from_secs(snapshot.access_ttl_secs),
        Duration::from_secs(snapshot.leeway_secs),
    );
    apply(shared, &snapshot.entries, snapshot.cursor);
    // At every connection too: connections cut short (a balancer's age limit) must not keep
    // the copy from ever being purged.
    purge(shared);
    shared.connections.fetch_add(1, Ordering::Relaxed);
    shared.heard_now();

    // The headers must come within the request timeout; only the body may last.
    let mut response = tokio::time::timeout(
        shared.config.request_timeout,
        shared
            .http
            .get(shared.url("/v1/revocations/stream"))
            .query(&[("cursor", snapshot.cursor)])
            .bearer_auth(key)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send(),
    )
    .await
    .map_err(|_| "stream request: no answer".to_owned())?
    .map_err(|e| format!("stream request: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("stream request: status {}", response.status()));
    }
    let mut parser = SseParser::default();
    let mut purged = Instant::now();
    loop {
        // Silence as long as the staleness bound: the copy is no longer trusted anyway, so
        // start over rather than wait on a connection that may be dead.
        let chunk = tokio::time::timeout(shared.config.max_staleness, response.chunk())
            .await
            .map_err(|_| "the stream went silent".to_owned())?
            .map_err(|e| format!("stream: {e}"))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        for event in parser.feed(&chunk).map_err(|e| e.to_string())? {
            match event.kind.as_str() {
                "revocations" => {
                    let batch: Batch = serde_json::from_str(&event.data)
                        .map_err(|e| format!("revocations event: {e}"))?;
                    apply(shared, &batch.entries, batch.cursor);
                    shared.heard_now();
                }
                "heartbeat" => shared.heard_now(),
                _ => {}
            }
        }
        if purged.elapsed() > PURGE_EVERY {
            purge(shared);
            purged = Instant::now();
        }
    }
}

/// The fallback while the copy is stale: Tessera's own `/v1/auth/verify` decides.
pub(crate) async fn ask_tessera(shared: &Shared, token: &str) -> Result<(), VerifyError> {
    let response = shared
        .http
        .get(shared.url("/v1/auth/verify"))
        .bearer_auth(token)
        .timeout(shared.config.request_timeout)
        .send()
        .await
        .map_err(|_| VerifyError::Unavailable)?;
    match response.status() {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNAUTHORIZED => {
            // Keep Tessera's distinction: an expired token is refreshed, a revoked one is not.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if body["error"] == "token_expired" {
                Err(VerifyError::Invalid(
                    tessera_core::access::TokenError::Expired,
                ))
            } else {
                Err(VerifyError::Revoked(None))
            }
        }
        _ => Err(VerifyError::Unavailable),
    }
}
