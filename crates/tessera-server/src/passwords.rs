//! Password hashing off the async runtime: argon2id runs on Tokio's blocking pool behind a
//! semaphore, so a login flood queues here and memory stays bounded at `permits × m`. The hashing
//! threads run at the lowest CPU priority (nice 19): when a login flood and bearer checks compete
//! for a core, the scheduler serves verify and refresh first, and hashing gets every cycle they
//! leave (BENCHMARKS.md measures both).

use std::sync::Arc;

use tessera_core::password::{PasswordCheck, PasswordHasher};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The bounded hashing pool.
#[derive(Debug, Clone)]
pub struct PasswordPool {
    hasher: Arc<PasswordHasher>,
    permits: Arc<Semaphore>,
}

impl PasswordPool {
    /// A pool running at most `concurrency` hashes at once.
    pub fn new(hasher: PasswordHasher, concurrency: usize) -> Self {
        Self {
            hasher: Arc::new(hasher),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Hashes held back waiting for a permit, for metrics and tests.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let hasher = Arc::clone(&self.hasher);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            // Only hashing runs on this pool; lowering a thread twice is harmless. Failure (a
            // platform without niceness) leaves the default priority.
            let _ = thread_priority::ThreadPriority::Min.set_for_current();
            span.in_scope(|| work(&hasher))
        })
        .await
        .map_err(|e| ApiError::internal(&e))
    }

    /// Checks a password against a PHC string (`None`: the dummy hash, same cost).
    pub async fn check(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<PasswordCheck, ApiError> {
        self.run(move |h| h.check(&password, phc.as_deref())).await
    }

    /// Hashes a password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |h| h.hash(&password))
            .await?
            .map_err(|e| ApiError::internal(&e))
    }
}
