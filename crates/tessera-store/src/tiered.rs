//! The tiered session store: a SQL database is the source of truth, Redis holds a write-through
//! copy of each session that reads use first (cache-aside), and carries the revocation bus.
//!
//! The rules that make losing Redis harmless:
//!
//! - **Every write goes to SQL first**, and only then to Redis. A write Redis did not take
//!   leaves the copy behind, never ahead.
//! - **A copy can be behind, never wrong in a way that matters.** The copies only move forward
//!   (see [`SessionCache`]), and the only verdict a copy may decide alone is "rotate", which
//!   SQL's compare-and-set confirms; every other verdict (grace retry, reuse, revoked,
//!   expired, unknown) is taken again from SQL ([`SessionStore::session_from_source`]). A lost
//!   rotation refreshes the copy from SQL.
//! - **Revocations are SQL rows** (the revocation log in SQL, read by every instance from its
//!   cursor), then tombstones in Redis; a refill never overwrites a tombstone.
//! - **Redis down**: after a failed Redis call the cache is skipped for [`COOL_DOWN`] and every
//!   operation is served from SQL alone, so a dead Redis costs one timeout at most per
//!   cool-down, not one per request; [`SessionStore::degraded`] says so. A background task
//!   probes Redis once per cool-down meanwhile (never on a request's path); when Redis answers
//!   again it is used again, and copies written before are caught up by the rules above.
//! - **Redis flushed or restarted empty**: every read is a miss and refills from SQL; nobody is
//!   logged out and nothing revoked comes back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::ids::{SessionId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{RevokeReason, Session};
use tessera_core::Timestamp;
use tokio::sync::Notify;

use crate::redis::cache::{Cached, SessionCache};
use crate::{RevocationBatch, SessionSelector, SessionStore, StoreError};

/// How long the cache is skipped after Redis failed to answer.
pub const COOL_DOWN: Duration = Duration::from_secs(1);

/// SQL as the source of truth with a Redis copy in front.
#[derive(Debug)]
pub struct TieredStore {
    sql: Arc<dyn SessionStore>,
    cache: Arc<SessionCache>,
    /// How long revoked entries and tombstones are kept (one access-token lifetime and leeway).
    keep: Duration,
    /// Until when the cache is skipped (after a Redis failure); `None`: the cache is healthy.
    skip_until: Arc<Mutex<Option<Instant>>>,
}

impl TieredStore {
    /// Puts `cache` in front of `sql`, and starts the probe of a cache that went down.
    pub fn new(sql: Arc<dyn SessionStore>, cache: SessionCache, keep: Duration) -> Self {
        let store = Self {
            sql,
            cache: Arc::new(cache),
            keep,
            skip_until: Arc::new(Mutex::new(None)),
        };
        store.spawn_probe();
        store
    }

    /// Once per cool-down while the cache is down, asks Redis whether it is back. Ends when
    /// the store is dropped.
    fn spawn_probe(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, skip) = (Arc::downgrade(&self.cache), Arc::clone(&self.skip_until));
        handle.spawn(async move {
            loop {
                tokio::time::sleep(COOL_DOWN).await;
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                let due = skip
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some_and(|until| Instant::now() >= until);
                if due {
                    let answer = cache.ping().await;
                    let mut skip = skip.lock().unwrap_or_else(PoisonError::into_inner);
                    *skip = match answer {
                        Ok(()) => {
                            tracing::info!("redis cache reachable again");
                            None
                        }
                        Err(_) => Some(Instant::now() + COOL_DOWN),
                    };
                }
            }
        });
    }

    /// Whether to try the cache: yes, unless it failed less than [`COOL_DOWN`] ago.
    fn cache_usable(&self) -> bool {
        let skip = self
            .skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        skip.is_none_or(|until| Instant::now() >= until)
    }

    /// Records the outcome of a cache call: a failure skips the cache for a while, a success
    /// ends that. The cache is never needed for an answer, so its errors stop here.
    fn cache_result<T>(&self, what: &'static str, result: Result<T, StoreError>) -> Option<T> {
        match result {
            Ok(value) => {
                let mut skip = self
                    .skip_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if skip.take().is_some() {
                    tracing::info!("redis cache reachable again");
                }
                Some(value)
            }
            Err(e) => {
                let mut skip = self
                    .skip_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if skip.is_none() {
                    tracing::warn!(error = %e, what, "redis cache unavailable; serving from SQL");
                }
                *skip = Some(Instant::now() + COOL_DOWN);
                None
            }
        }
    }

    /// Writes a copy through to the cache, best effort.
    async fn put(&self, session: &Session, now: Timestamp) {
        if self.cache_usable() {
            let written = self.cache.put(session, now).await;
            self.cache_result("write a session copy", written);
        }
    }

    /// Tombstones and the bus after revocations, best effort (SQL already holds them).
    async fn after_revocations(&self, entries: &[RevocationEntry], reason: RevokeReason) {
        if entries.is_empty() || !self.cache_usable() {
            return;
        }
        for entry in entries {
            if let RevocationEntry::RevokedSession { sid, at, .. } = entry {
                let done = self.cache.tombstone(sid, reason, *at, self.keep).await;
                if self.cache_result("write a tombstone", done).is_none() {
                    return;
                }
            }
        }
        let published = self.cache.publish().await;
        self.cache_result("publish a revocation", published);
    }
}

#[async_trait]
impl SessionStore for TieredStore {
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        let evicted = self.sql.create_session(session, max_live, keep).await?;
        self.put(session, session.created_at).await;
        self.after_revocations(&evicted, RevokeReason::SessionLimit)
            .await;
        Ok(evicted)
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        if self.cache_usable() {
            let cached = self.cache.get(id).await;
            if let Some(Cached::Copy(session)) = self.cache_result("read a session", cached) {
                return Ok(Some(*session));
            }
        }
        self.session_from_source(id).await
    }

    fn caches_sessions(&self) -> bool {
        true
    }

    async fn session_from_source(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let session = self.sql.session(id).await?;
        if let Some(s) = &session {
            // The refill: the copy takes SQL's state unless it is already as new or revoked. The
            // copy's TTL is counted from the last rotation: at most the idle lifetime too long.
            self.put(s, s.rotated_at).await;
        }
        Ok(session)
    }

    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError> {
        let rotated = self.sql.rotate(next, expected_generation).await?;
        if rotated {
            self.put(next, next.rotated_at).await;
        } else if let Ok(Some(current)) = self.sql.session(&next.id).await {
            // The copy was behind (or another request won): catch it up, so the next read
            // decides on the current state.
            self.put(&current, next.rotated_at).await;
        }
        Ok(rotated)
    }

    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        let entries = self
            .sql
            .revoke_sessions(selector, reason, now, keep)
            .await?;
        self.after_revocations(&entries, reason).await;
        Ok(entries)
    }

    async fn record(&self, entries: &[RevocationEntry], now: Timestamp) -> Result<(), StoreError> {
        self.sql.record(entries, now).await?;
        if self.cache_usable() {
            let published = self.cache.publish().await;
            self.cache_result("publish a revocation", published);
        }
        Ok(())
    }

    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.sql.live_sessions(user_id, now).await
    }

    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<RevocationBatch, StoreError> {
        self.sql.revocations_since(cursor, now).await
    }

    async fn purge(&self, now: Timestamp, keep: Duration, batch: u32) -> Result<u64, StoreError> {
        // Copies in Redis expire with their keys' TTLs.
        self.sql.purge(now, keep, batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Readiness is SQL's; the cache is probed in the background.
        self.sql.ping().await
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<Option<u64>, StoreError> {
        self.sql.count_live_sessions(now).await
    }

    fn degraded(&self) -> Option<&'static str> {
        let skip = self
            .skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        skip.is_some()
            .then_some("the redis cache is unreachable; serving from SQL alone")
    }

    fn revocation_signal(&self) -> Option<Arc<Notify>> {
        Some(self.cache.signal())
    }
}
