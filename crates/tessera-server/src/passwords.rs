//! Password hashing off the async runtime, on threads of its own.
//!
//! argon2id runs on `concurrency` dedicated threads fed by a queue: a login flood waits in the
//! queue, memory stays bounded at `concurrency × m`, and the async workers are never blocked.
//! The hashing threads run at the lowest CPU priority (nice 19): when a flood of logins and
//! bearer checks compete for a core, the scheduler serves verify and refresh first and hashing
//! gets every cycle they leave (BENCHMARKS.md measures both). The threads are the pool's own, so
//! their priority touches nothing else (Tokio's blocking pool also resolves host names).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tessera_core::password::{PasswordCheck, PasswordHasher};
use tokio::sync::oneshot;

use crate::error::ApiError;

type Job = Box<dyn FnOnce(&PasswordHasher) + Send>;

/// The hashing threads and their queue. The threads end when the pool is dropped.
#[derive(Debug, Clone)]
pub struct PasswordPool {
    jobs: mpsc::Sender<Job>,
    /// Jobs queued or running (the `tessera_password_hash_queue` gauge).
    depth: prometheus_client::metrics::gauge::Gauge,
    /// Password verifications run, the dummy ones for unknown users included.
    checks: prometheus_client::metrics::counter::Counter,
}

impl PasswordPool {
    /// A pool of `concurrency` hashing threads; `depth` counts the jobs queued or running,
    /// `checks` the verifications.
    pub fn new(
        hasher: PasswordHasher,
        concurrency: usize,
        depth: prometheus_client::metrics::gauge::Gauge,
        checks: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let hasher = Arc::new(hasher);
        for i in 0..concurrency.max(1) {
            let (queue, hasher) = (Arc::clone(&queue), Arc::clone(&hasher));
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{i}"))
                .spawn(move || {
                    // Failure (a platform without niceness) leaves the default priority.
                    let _ = thread_priority::ThreadPriority::Min.set_for_current();
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(&hasher),
                            Err(_) => return, // the pool is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            jobs,
            depth,
            checks,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let depth = self.depth.clone();
        depth.inc();
        let job: Job = Box::new(move |hasher| {
            let outcome = span.in_scope(|| work(hasher));
            depth.dec();
            let _ = done.send(outcome);
        });
        self.jobs.send(job).map_err(|_| {
            self.depth.dec();
            ApiError::internal(&"the password hashing threads are gone")
        })?;
        result
            .await
            .map_err(|_| ApiError::internal(&"a password hashing thread failed"))
    }

    /// Checks a password against a PHC string (`None`: the dummy hash, same cost).
    pub async fn check(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<PasswordCheck, ApiError> {
        self.checks.inc();
        self.run(move |h| h.check(&password, phc.as_deref())).await
    }

    /// Hashes a password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |h| h.hash(&password))
            .await?
            .map_err(|e| ApiError::internal(&e))
    }
}
