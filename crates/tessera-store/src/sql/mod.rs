//! PostgreSQL and MySQL/MariaDB: users, sessions and the revocation log in a database server,
//! durable and shared by several Tessera instances.
//!
//! Both backends run ONE body of code (`body.rs`, compiled once per database with its own
//! driver types) and differ only in what their `Dialect` says: placeholders, how a batch of rows is
//! deleted, the schema in `migrations/{postgres,mysql}`. What the body relies on:
//!
//! - **Rotation** is one statement, `update … where id = ? and generation = ? and revoked_at is
//!   null`: the compare and the set are atomic in the database, whatever the isolation level.
//! - **The revocation log** gets its sequence numbers under the lock of the one row of
//!   `revocation_head`, taken last in every writing transaction. Sequence numbers therefore
//!   become visible in commit order, and a reader that has seen `seq = n` never later finds an
//!   entry `< n` (an auto-increment column would let a slow transaction commit a lower number
//!   after a faster one, and the feed's cursor would skip it for good).
//! - **The session cap** locks the user's row first, so two logins of one user cannot both
//!   count the same live sessions.
//! - **Deadlocks and serialisation failures** are retried a few times inside the store; what
//!   is still failing, and every connection problem, is [`StoreError::Unavailable`] (503).
//! - **Every operation is bounded** by the configured timeout: a database that hangs answers
//!   503 rather than holding the request. The server side gives up on lock waits after the same
//!   time (`lock_timeout`, `innodb_lock_wait_timeout`), so an abandoned transaction does not
//!   keep its locks.
//! - **The bus**: on PostgreSQL every append to the log also sends `pg_notify`, delivered at
//!   commit to every instance's `LISTEN` connection (one of its own, outside the pool, opened
//!   when the server first asks for the signal), so other instances read the log at once.
//!   MySQL has no such channel; instances poll the log (every 250 ms).
//! - **Expiry** is the product's job: queries filter on `expires_at`, and
//!   [`SessionStore::purge`](crate::SessionStore::purge) deletes expired rows in small batches.

use std::time::Duration;

use crate::StoreError;

/// How to reach a SQL database.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// `postgres://…` (or `postgresql://…`) or `mysql://…` (MySQL and MariaDB).
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// Bound on every operation (waiting for a connection included); slower answers are
    /// [`StoreError::Unavailable`].
    pub timeout: Duration,
    /// What to do about the schema when connecting.
    pub migrations: OnConnect,
}

/// What [`connect`](postgres::PgStore::connect) does about pending schema migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConnect {
    /// Apply them (needs the database to answer at start).
    Migrate,
    /// Refuse to start while any is pending, naming `tessera migrate`.
    RequireCurrent,
    /// Nothing (the caller migrates, as `tessera migrate` does).
    Nothing,
}

impl SqlOptions {
    /// Options with the defaults: 16 connections, 3 s, migrations applied.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            timeout: Duration::from_secs(3),
            migrations: OnConnect::Migrate,
        }
    }
}

/// The SQL dialects the shared body is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    /// Rewrites `?` placeholders into the dialect's own (`$1, $2, …` for PostgreSQL). The SQL
    /// of this crate never has a `?` inside a string literal.
    pub(crate) fn placeholders(self, sql: &str) -> String {
        match self {
            Dialect::MySql => sql.to_owned(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 8);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// A statement of this crate in the dialect of the module it is used in, converted once.
macro_rules! sql {
    ($text:expr) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| DIALECT.placeholders($text)).as_str()
    }};
}

/// Whether a database error means "not now" rather than "wrong": lost or refused connections,
/// a server shutting down or out of resources, a read-only server, lock waits, deadlocks and
/// serialisation failures. Judged by SQLSTATE (both servers send one) and, for MySQL, by the
/// server's error number where its SQLSTATE is the generic `HY000`.
pub(crate) fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let state = db.code().unwrap_or_default();
    let class_transient = state.starts_with("08") // connection exception
        || state.starts_with("53") // insufficient resources (PostgreSQL)
        || state.starts_with("57P") // admin / crash shutdown, cannot connect now (PostgreSQL)
        || state == "40001" // serialisation failure, MySQL deadlock
        || state == "40P01" // deadlock (PostgreSQL)
        || state == "25006" // read-only transaction (PostgreSQL standby)
        || state == "55P03" // lock not available (PostgreSQL)
        || state == "57014"; // statement timeout or cancelled (PostgreSQL)
    class_transient || mysql_transient_number(db)
}

/// MySQL/MariaDB error numbers that mean "not now": too many connections (1040), server
/// shutting down (1053, 1927), lock wait timeout (1205), deadlock (1213), read-only server
/// (1290, 1836), query interrupted or over its time (1317, 1969, 3024).
#[cfg(feature = "mysql")]
fn mysql_transient_number(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| {
            matches!(
                e.number(),
                1040 | 1053 | 1205 | 1213 | 1290 | 1317 | 1836 | 1927 | 1969 | 3024
            )
        })
}

#[cfg(not(feature = "mysql"))]
fn mysql_transient_number(_: &dyn sqlx::error::DatabaseError) -> bool {
    false
}

/// Whether retrying the same transaction at once may succeed (deadlock, serialisation failure).
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01")) || {
                #[cfg(feature = "mysql")]
                {
                    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|e| e.number() == 1213)
                }
                #[cfg(not(feature = "mysql"))]
                {
                    false
                }
            }
        }
        _ => false,
    }
}

/// Maps a driver error: constraint violations are conflicts; "not now" is unavailability; the
/// rest is a backend failure.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("duplicate"),
        sqlx::Error::Database(db) if is_transient(db.as_ref()) => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}

fn timed_out() -> StoreError {
    StoreError::Unavailable("the database did not answer in time".into())
}

#[cfg(feature = "postgres")]
mod listen {
    //! The PostgreSQL revocation bus: `LISTEN` on one connection, reconnecting forever.

    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    use tokio::sync::Notify;

    /// Starts listening on `channel`, on a connection of its own (outside the store's pool);
    /// the returned signal is raised on every notification for this schema, and after every
    /// (re)connection (whatever was missed meanwhile is in the log). The task ends when every
    /// holder of the signal is gone.
    pub(super) fn spawn(options: PgConnectOptions, channel: &'static str) -> Option<Arc<Notify>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let signal = Arc::new(Notify::new());
        let weak = Arc::downgrade(&signal);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        handle.spawn(async move {
            loop {
                if let Err(e) = follow(&pool, channel, &weak).await {
                    tracing::debug!(error = %e, "revocation channel lost; listening again");
                }
                if weak.strong_count() == 0 {
                    pool.close().await;
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Some(signal)
    }

    /// Raises the signal; `false` once nobody holds it.
    fn raise(weak: &Weak<Notify>) -> bool {
        weak.upgrade().map(|s| s.notify_one()).is_some()
    }

    async fn follow(
        pool: &sqlx::PgPool,
        channel: &str,
        weak: &Weak<Notify>,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        let schema: String = sqlx::query_scalar("select current_schema()")
            .fetch_one(&mut listener)
            .await?;
        listener.listen(channel).await?;
        if !raise(weak) {
            return Ok(());
        }
        loop {
            // `None`: the connection was lost and is made again at the next call; entries
            // appended meanwhile are read from the log.
            let wake = match listener.try_recv().await? {
                Some(notification) => notification.payload() == schema,
                None => true,
            };
            if wake && !raise(weak) {
                return Ok(());
            }
        }
    }
}

#[cfg(feature = "mysql")]
pub mod mysql {
    //! MySQL and MariaDB (InnoDB), through the shared SQL body.
    use super::*;

    type Db = sqlx::MySql;
    const DIALECT: Dialect = Dialect::MySql;
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");
    /// MySQL has no notification channel: other instances poll the log.
    const ANNOUNCE: Option<&str> = None;

    fn bus(_: &sqlx::mysql::MySqlConnectOptions) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// Lock waits end after `timeout` (whole seconds, at least 1).
    fn session_setup(timeout: Duration) -> String {
        let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
        format!("set session innodb_lock_wait_timeout = {secs}")
    }

    /// The MySQL/MariaDB backend: users, sessions and revocations.
    pub type MySqlStore = SqlStore;

    include!("body.rs");
}

#[cfg(feature = "postgres")]
pub mod postgres {
    //! PostgreSQL, through the shared SQL body.
    use super::*;

    type Db = sqlx::Postgres;
    const DIALECT: Dialect = Dialect::Postgres;
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    /// Every transaction that appends to the log also notifies; PostgreSQL delivers it at
    /// commit, to every connection listening in the database. The payload names the schema,
    /// so deployments in other schemas of one database ignore it.
    const ANNOUNCE: Option<&str> =
        Some("select pg_notify('tessera_revocations', current_schema())");

    fn bus(
        options: &sqlx::postgres::PgConnectOptions,
    ) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        super::listen::spawn(options.clone(), "tessera_revocations")
    }

    /// Lock waits end after `timeout`; a statement is cancelled after twice that.
    fn session_setup(timeout: Duration) -> String {
        let ms = timeout.as_millis().max(1);
        format!(
            "set lock_timeout = {ms}; set statement_timeout = {}",
            ms.saturating_mul(2)
        )
    }

    /// The PostgreSQL backend: users, sessions and revocations.
    pub type PgStore = SqlStore;

    include!("body.rs");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "update t set a = ? where b = ? and c = ?";
        assert_eq!(Dialect::MySql.placeholders(sql), sql);
        assert_eq!(
            Dialect::Postgres.placeholders(sql),
            "update t set a = $1 where b = $2 and c = $3"
        );
    }
}
