//! The in-memory copy of the revocation state that every bearer check reads, with no I/O.
//!
//! It is filled from the store's revocation log at start, updated at once by every revocation this
//! process makes (before the client gets its answer), and follows the log for revocations made
//! by other processes (the `tessera user …` commands) every [`TAIL_INTERVAL`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tessera_core::revocation::{RevocationEntry, RevocationSet};
use tessera_core::validity::{self, Dead, Subject};
use tessera_core::Timestamp;
use tessera_store::{SessionStore, StoreError};

/// How often the log is followed.
pub const TAIL_INTERVAL: Duration = Duration::from_millis(250);

/// How old the last successful read of the log may be before this process stops trusting its
/// copy: bearer checks then fail closed (503) instead of possibly accepting a revoked token.
pub const MAX_STALENESS: Duration = Duration::from_secs(3);

/// The revocation state of this process.
#[derive(Debug)]
pub struct RevocationCache {
    set: RwLock<RevocationSet>,
    cursor: AtomicU64,
    /// Real (monotonic) time of the last successful sync: independent of the injected clock.
    last_sync: Mutex<Option<Instant>>,
    /// Bumped whenever entries arrive (made here or read from the log): wakes the feed streams.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for RevocationCache {
    fn default() -> Self {
        Self {
            set: RwLock::default(),
            cursor: AtomicU64::new(0),
            last_sync: Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl RevocationCache {
    /// Adds entries (idempotent).
    pub fn apply(&self, entries: &[RevocationEntry]) {
        if entries.is_empty() {
            return;
        }
        {
            let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
            for entry in entries {
                set.apply(entry);
            }
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a change whenever entries arrive.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every live entry, and a log cursor such that the entries include the whole log up to it:
    /// the snapshot a verifier loads before following the log from that cursor.
    pub fn snapshot(&self) -> (u64, Vec<RevocationEntry>) {
        // The cursor first: `sync` applies entries before it moves the cursor past them.
        let cursor = self.cursor.load(Ordering::Acquire);
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        (cursor, set.entries())
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
        let mut applied = 0;
        // Page until the log is read to its end: only then is this copy current.
        loop {
            let batch = store
                .revocations_since(self.cursor.load(Ordering::Acquire), now)
                .await?;
            self.apply(&batch.entries);
            applied += batch.entries.len();
            // A log that went back (a new, empty Redis) restarts the cursor from its beginning.
            self.cursor.store(batch.cursor, Ordering::Release);
            if !batch.more {
                break;
            }
        }
        *self
            .last_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        Ok(applied)
    }

    /// How long ago the last sync succeeded (`None`: never).
    pub fn sync_age(&self) -> Option<Duration> {
        self.last_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|t| t.elapsed())
    }

    /// Whether this copy is recent enough to decide on.
    pub fn is_fresh(&self) -> bool {
        self.sync_age().is_some_and(|age| age <= MAX_STALENESS)
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
