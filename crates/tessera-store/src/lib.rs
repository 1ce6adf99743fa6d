//! Tessera's storage layer.
//!
//! Two small traits whose operations are the product's own: [`UserStore`] (accounts) and
//! [`SessionStore`] (sessions and the revocation state). The atomic rotation is ONE operation
//! ([`SessionStore::rotate`]), so no backend can get it wrong by composing reads and writes.
//! Every backend passes the same [`conformance`] suite.
//!
//! # Layout
//! - this file: the traits, [`StoreError`], the stored types;
//! - [`sqlite`]: the embedded default backend (feature `sqlite`);
//! - [`sql`]: PostgreSQL and MySQL/MariaDB (features `postgres`, `mysql`);
//! - [`tiered`]: SQL as the source of truth with a Redis copy in front (features `redis` and
//!   `postgres` or `mysql`);
//! - [`redis`]: Redis and Redis Cluster for sessions and revocations (feature `redis`);
//! - [`conformance`]: the shared suite (feature `conformance`).
#![warn(missing_docs)]

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::ids::{SessionId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{RevokeReason, Session};
use tessera_core::validity::UserStanding;
use tessera_core::Timestamp;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "redis")]
pub mod tiered;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store. Backend types never appear here.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (for example a taken username).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The store cannot be reached or cannot write right now (refused, timed out, busy, disk
    /// full, read-only). Retryable: the API answers 503.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the backend reported.
    #[error("store failure")]
    Backend(#[source] BoxError),
}

/// An account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id, the `sub` of tokens.
    pub id: UserId,
    /// Login name as given at sign-up.
    pub username: String,
    /// argon2id PHC string, `None` for users authenticated elsewhere.
    pub password_hash: Option<String>,
    /// Role names, copied into access tokens.
    pub roles: Vec<String>,
    /// Blocked users can neither log in nor refresh.
    pub blocked: bool,
    /// Sessions created and tokens issued before this are dead.
    pub cutoff: Option<Timestamp>,
    /// Sign-up time.
    pub created_at: Timestamp,
}

impl Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl User {
    /// What the validity check needs to know about this user.
    pub fn standing(&self) -> UserStanding {
        UserStanding {
            blocked: self.blocked,
            cutoff: self.cutoff,
        }
    }
}

/// A user about to be created.
#[derive(Clone)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// argon2id PHC string, if the user logs in with a password.
    pub password_hash: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
}

impl Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Which sessions a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSelector {
    /// One session.
    One(SessionId),
    /// Every live session of a user, except perhaps one (the caller's, for "log out others").
    User {
        /// The user.
        user_id: UserId,
        /// A session to keep.
        except: Option<SessionId>,
    },
}

/// Revocation entries read from a cursor.
#[derive(Debug, Clone, Default)]
pub struct RevocationBatch {
    /// Live entries written after the cursor, oldest first.
    pub entries: Vec<RevocationEntry>,
    /// The cursor to read from next time.
    pub cursor: u64,
    /// Whether more entries are waiting after this batch (read again at once).
    pub more: bool,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync + Debug + 'static {
    /// Creates a user; [`StoreError::Conflict`] if the username is taken (ignoring case).
    async fn create_user(&self, user: &NewUser, now: Timestamp) -> Result<User, StoreError>;
    /// Stores a user exactly as given (id, hash, roles, blocked, cutoff, creation time), for
    /// moving accounts between stores; [`StoreError::Conflict`] if the id or the username (ignoring
    /// case) is taken.
    async fn import_user(&self, user: &User, now: Timestamp) -> Result<(), StoreError>;
    /// The failed logins recorded for `account` (a lower-cased username, known or not) and the
    /// time of the last one; `None` if there are none.
    async fn login_failures(&self, account: &str) -> Result<Option<(u32, Timestamp)>, StoreError>;
    /// Records one more failed login for `account` at `now`; returns the new count. Atomic:
    /// failures recorded at once by several instances are all counted.
    async fn record_login_failure(&self, account: &str, now: Timestamp) -> Result<u32, StoreError>;
    /// Forgets the failures of `account` (it logged in).
    async fn clear_login_failures(&self, account: &str) -> Result<(), StoreError>;
    /// Deletes at most `batch` failure records whose last failure is before `before`.
    async fn purge_login_failures(&self, before: Timestamp, batch: u32) -> Result<u64, StoreError>;
    /// The shared key ring, sealed by the caller, and its version; `None` before the first
    /// [`swap_keyring`](Self::swap_keyring).
    async fn keyring(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError>;
    /// Replaces the key ring if its version is still `expected` (0: there is none yet); the new
    /// version is `expected + 1`. Returns whether it was replaced (`false`: another writer won).
    async fn swap_keyring(&self, expected: i64, sealed: &[u8]) -> Result<bool, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// The user with this username (ignoring case).
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Users in sign-up order, at most `limit`, after the user id `after`.
    async fn list_users(&self, after: Option<&UserId>, limit: u32)
        -> Result<Vec<User>, StoreError>;
    /// Replaces the password hash (parameter upgrade, password change). `false` if no such user.
    async fn set_password_hash(
        &self,
        id: &UserId,
        phc: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Blocks or unblocks. `false` if no such user.
    async fn set_blocked(
        &self,
        id: &UserId,
        blocked: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Raises the user's cutoff to `at` (never lowers it). `false` if no such user.
    async fn raise_cutoff(&self, id: &UserId, at: Timestamp) -> Result<bool, StoreError>;
    /// Deletes the user. `false` if no such user.
    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError>;
}

/// Sessions and the revocation state.
#[async_trait]
pub trait SessionStore: Send + Sync + Debug + 'static {
    /// Stores a new session. If its user then has more than `max_live` live sessions, the oldest
    /// are revoked ([`RevokeReason::SessionLimit`]) in the same transaction; their revocation
    /// entries (kept until `now + keep`) are returned.
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError>;

    /// The session, live or not, if the store still has it.
    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;

    /// Compare-and-set: replaces the session's state with `next` if its generation is still
    /// `expected_generation` and it is not revoked. `true` if this call made the change. Of any
    /// number of concurrent calls with the same expected generation, at most one returns `true`.
    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError>;

    /// Revokes the live sessions chosen by `selector`, records a revoked-session entry for each
    /// (kept until `now + keep`), and returns those entries.
    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError>;

    /// Records revocation entries (denied tokens, user cutoffs) as they are, at `now`.
    async fn record(&self, entries: &[RevocationEntry], now: Timestamp) -> Result<(), StoreError>;

    /// The user's sessions that are neither revoked nor expired at `now`, newest first.
    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError>;

    /// Revocation entries written after `cursor` (0 = all) that are still in force at `now`.
    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<RevocationBatch, StoreError>;

    /// Deletes at most `batch` expired rows (sessions past expiry by `keep`, revocation entries
    /// past their time). Returns how many were deleted.
    async fn purge(&self, now: Timestamp, keep: Duration, batch: u32) -> Result<u64, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many sessions are live (neither revoked nor expired) at `now`, for the metrics.
    /// `None` where counting would cost a scan of the whole store (Redis).
    async fn count_live_sessions(&self, _now: Timestamp) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Whether [`session`](Self::session) may answer from a copy that is behind the source of
    /// truth (the tiered store). Callers then trust such a read only for a rotation, which
    /// [`rotate`](Self::rotate) confirms, and take every other verdict from
    /// [`session_from_source`](Self::session_from_source).
    fn caches_sessions(&self) -> bool {
        false
    }

    /// The session as the source of truth has it.
    async fn session_from_source(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.session(id).await
    }

    /// What works in a reduced way while the store still answers (a cache that is down), for
    /// the readiness report. `None`: nothing.
    fn degraded(&self) -> Option<&'static str> {
        None
    }

    /// A signal raised when another instance appended to the revocation log (the bus), so the
    /// log is read at once rather than at the next poll. `None`: poll only.
    fn revocation_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}
