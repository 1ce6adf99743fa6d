//! The in-memory copy of the revocation state that every bearer check reads, with no I/O.
//!
//! It is filled from the store's revocation log at start, updated at once by every revocation this
//! process makes (before the client gets its answer), and follows the log for revocations made
//! by other processes (the `tessera user …` commands) every [`TAIL_INTERVAL`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use tessera_core::revocation::{RevocationEntry, RevocationSet};
use tessera_core::validity::{self, Dead, Subject};
use tessera_core::Timestamp;
use tessera_store::{SessionStore, StoreError};

/// How often the log is followed.
pub const TAIL_INTERVAL: Duration = Duration::from_millis(250);

/// The revocation state of this process.
#[derive(Debug, Default)]
pub struct RevocationCache {
    set: RwLock<RevocationSet>,
    cursor: AtomicU64,
    last_sync_ms: AtomicI64,
}

impl RevocationCache {
    /// Adds entries (idempotent).
    pub fn apply(&self, entries: &[RevocationEntry]) {
        if entries.is_empty() {
            return;
        }
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        for entry in entries {
            set.apply(entry);
        }
    }

    /// THE validity check (see [`tessera_core::validity`]) against this state.
    pub fn check(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Dead> {
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        validity::check(subject, &set, now)
    }

    /// Runs `f` on the current state (for the refresh decision, which checks validity inside).
    pub fn with<R>(&self, f: impl FnOnce(&RevocationSet) -> R) -> R {
        f(&self.set.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads what the log gained since the last sync. Returns how many entries were applied.
    pub async fn sync(
        &self,
        store: &dyn SessionStore,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let batch = store
            .revocations_since(self.cursor.load(Ordering::Acquire), now)
            .await?;
        self.apply(&batch.entries);
        self.cursor.fetch_max(batch.cursor, Ordering::AcqRel);
        self.last_sync_ms.store(now.as_millis(), Ordering::Release);
        Ok(batch.entries.len())
    }

    /// When the last sync succeeded.
    pub fn last_sync(&self) -> Timestamp {
        Timestamp::from_millis(self.last_sync_ms.load(Ordering::Acquire))
    }

    /// Forgets entries whose time has passed.
    pub fn purge(&self, now: Timestamp) {
        self.set
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .purge(now);
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
