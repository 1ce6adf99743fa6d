//! The session store with every operation timed and every error counted, for the metrics
//! (`tessera_store_operation_duration_seconds`, `tessera_store_errors_total`). A decorator: it
//! changes no answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::ids::{SessionId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{RevokeReason, Session};
use tessera_core::Timestamp;
use tessera_store::{RevocationBatch, SessionSelector, SessionStore, StoreError};

use crate::metrics::StoreOps;

/// A session store whose operations are measured.
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn SessionStore>,
    ops: StoreOps,
}

impl Metered {
    /// Wraps `inner`, reporting to `ops`.
    pub fn new(inner: Arc<dyn SessionStore>, ops: StoreOps) -> Self {
        Self { inner, ops }
    }

    async fn time<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        let kind = result.as_ref().err().map(|e| match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Backend(_) => "backend",
            StoreError::Conflict(_) => "conflict",
        });
        self.ops.observe(op, started.elapsed(), kind);
        result
    }
}

#[async_trait]
impl SessionStore for Metered {
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.time(
            "create_session",
            self.inner.create_session(session, max_live, keep),
        )
        .await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.time("session", self.inner.session(id)).await
    }

    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError> {
        self.time("rotate", self.inner.rotate(next, expected_generation))
            .await
    }

    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.time(
            "revoke_sessions",
            self.inner.revoke_sessions(selector, reason, now, keep),
        )
        .await
    }

    async fn record(&self, entries: &[RevocationEntry], now: Timestamp) -> Result<(), StoreError> {
        self.time("record", self.inner.record(entries, now)).await
    }

    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.time("live_sessions", self.inner.live_sessions(user_id, now))
            .await
    }

    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<RevocationBatch, StoreError> {
        self.time(
            "revocations_since",
            self.inner.revocations_since(cursor, now),
        )
        .await
    }

    async fn purge(&self, now: Timestamp, keep: Duration, batch: u32) -> Result<u64, StoreError> {
        self.time("purge", self.inner.purge(now, keep, batch)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.time("ping", self.inner.ping()).await
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<Option<u64>, StoreError> {
        self.time("count_live_sessions", self.inner.count_live_sessions(now))
            .await
    }

    fn caches_sessions(&self) -> bool {
        self.inner.caches_sessions()
    }

    async fn session_from_source(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.time("session_from_source", self.inner.session_from_source(id))
            .await
    }

    fn degraded(&self) -> Option<&'static str> {
        self.inner.degraded()
    }

    fn revocation_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.revocation_signal()
    }
}
