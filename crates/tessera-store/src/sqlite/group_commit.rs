//! Group commit of rotations: the refreshes waiting at one moment share one transaction, so one
//! fsync acknowledges all of them.
//!
//! With `synchronous = FULL` every commit is one fsync, and a one-row compare-and-set per commit
//! is bounded by the disk's fsync rate (BENCHMARKS.md measures it). Concurrent refreshes are
//! independent rows, so a single writer task takes every rotation queued when it is free, runs
//! their compare-and-set statements in one transaction and answers each after the COMMIT: the
//! same technique as PostgreSQL's and InnoDB's group commit.
//!
//! Rules it keeps:
//! - a rotation is answered only after the transaction holding it committed: nothing
//!   acknowledged is lost;
//! - each statement is the same atomic compare-and-set as alone, applied in queue order: two
//!   rotations of one session in one batch behave exactly as two in a row (the second loses);
//! - one failed statement fails the whole batch, and every caller in it gets the error (and a
//!   503): none of them was acknowledged, so a client simply retries.

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::rows::map_err;
use crate::StoreError;

/// Most rotations in one transaction (a bound on how long the writer is held).
const MAX_BATCH: usize = 64;

/// Rotations queued at most before callers wait for room.
const QUEUE: usize = 1024;

/// One compare-and-set of a session's generation, as bound into the UPDATE.
#[derive(Debug)]
pub(super) struct Rotation {
    pub(super) id: String,
    pub(super) expected_generation: i64,
    pub(super) generation: i64,
    pub(super) rotated_at: i64,
    pub(super) last_used_at: i64,
    pub(super) idle_expires_at: i64,
    pub(super) expires_at: i64,
}

type Reply = oneshot::Sender<Result<bool, StoreError>>;

/// The queue in front of the writer task.
#[derive(Debug, Clone)]
pub(super) struct Rotations {
    queue: mpsc::Sender<(Rotation, Reply)>,
}

impl Rotations {
    /// Starts the writer task on `writer` (it ends when every handle is dropped).
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, rx));
        Self { queue }
    }

    /// Queues `rotation` and waits for its commit: whether this call rotated the session.
    pub(super) async fn rotate(&self, rotation: Rotation) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("the session store is closed".into());
        self.queue
            .send((rotation, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run(writer: SqlitePool, mut rx: mpsc::Receiver<(Rotation, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rotations, replies): (Vec<Rotation>, Vec<Reply>) = batch.drain(..).unzip();
        match commit(&writer, &rotations).await {
            Ok(done) => {
                for (reply, done) in replies.into_iter().zip(done) {
                    // A caller that went away (its client disconnected) needs no answer.
                    let _ = reply.send(Ok(done));
                }
            }
            Err(e) => {
                let unavailable = matches!(e, StoreError::Unavailable(_));
                let message = format!("{e}: {}", source_text(&e));
                for reply in replies {
                    let shared = message.clone().into();
                    let _ = reply.send(Err(if unavailable {
                        StoreError::Unavailable(shared)
                    } else {
                        StoreError::Backend(shared)
                    }));
                }
            }
        }
    }
}

fn source_text(e: &StoreError) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}

/// Runs every compare-and-set in one transaction; returns which ones rotated, in order.
async fn commit(writer: &SqlitePool, rotations: &[Rotation]) -> Result<Vec<bool>, StoreError> {
    let mut tx = writer.begin().await.map_err(map_err)?;
    let mut done = Vec::with_capacity(rotations.len());
    for r in rotations {
        // One statement: the compare (generation, not revoked) and the set happen atomically.
        let rows = sqlx::query(
            "update sessions
             set generation = ?, rotated_at = ?, last_used_at = ?, idle_expires_at = ?, expires_at = ?
             where id = ? and generation = ? and revoked_at is null",
        )
        .bind(r.generation)
        .bind(r.rotated_at)
        .bind(r.last_used_at)
        .bind(r.idle_expires_at)
        .bind(r.expires_at)
        .bind(&r.id)
        .bind(r.expected_generation)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        done.push(rows == 1);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(done)
}
