// The body shared by the PostgreSQL and MySQL backends, included into each module by
// `include!` with `Db`, `DIALECT` and `MIGRATOR` defined there (see `sql/mod.rs`). It is plain
// Rust over one concrete driver each time: every query is type-checked per database.

use std::future::Future;
use std::str::FromStr as _;

use async_trait::async_trait;
use sqlx::pool::PoolOptions;
use sqlx::{Pool, Row as _, Transaction};
use tessera_core::ids::{SessionId, TokenId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{ClientInfo, RevokeReason, Session, SessionRevocation};
use tessera_core::Timestamp;

use crate::{NewUser, RevocationBatch, SessionSelector, SessionStore, StoreError, User, UserStore};

type Row = <Db as sqlx::Database>::Row;

/// How many times a transaction that hit a deadlock or a serialisation failure is run again.
const RETRIES: u32 = 3;

/// Revocation entries returned by one read of the log; `more` says whether to read again.
const LOG_PAGE: i64 = 5_000;

include!("rows.rs");

/// Users, sessions and the revocation log in one database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool<Db>,
    timeout: Duration,
    /// How to connect (the bus listens on a connection of its own).
    connect: <<Db as sqlx::Database>::Connection as sqlx::Connection>::Options,
    /// Raised when another instance appended to the revocation log (PostgreSQL only); the
    /// listener starts with the first caller.
    signal: std::sync::Arc<std::sync::OnceLock<Option<std::sync::Arc<tokio::sync::Notify>>>>,
}

impl SqlStore {
    /// Connects (the pool connects lazily: a database that is down at start answers 503 until
    /// it is up, unless `options.migrations` needs it now).
    pub async fn connect(options: &SqlOptions) -> Result<Self, StoreError> {
        let connect = <<Db as sqlx::Database>::Connection as sqlx::Connection>::Options::from_str(
            &options.url,
        )
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
        // The server gives up on a lock wait about when the client does, so a transaction the
        // client abandoned (its timeout) does not keep its row locks.
        let setup = session_setup(options.timeout);
        let pool = PoolOptions::<Db>::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.timeout)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    sqlx::Executor::execute(conn, setup.as_str()).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(connect.clone());
        let store = Self {
            pool,
            timeout: options.timeout,
            connect,
            signal: std::sync::Arc::new(std::sync::OnceLock::new()),
        };
        match options.migrations {
            OnConnect::Migrate => {
                store.migrate().await?;
            }
            OnConnect::Nothing => {}
            OnConnect::RequireCurrent => {
                let pending = store.pending_migrations().await?;
                if !pending.is_empty() {
                    return Err(StoreError::Backend(
                    format!(
                        "the database schema is behind ({} migration(s) pending): run `tessera migrate`",
                        pending.len()
                    )
                    .into(),
                    ));
                }
            }
        }
        Ok(store)
    }

    /// Applies pending migrations. Returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let pending = self.pending_migrations().await?;
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err(e),
            other => StoreError::Backend(Box::new(other)),
        })?;
        Ok(pending)
    }

    /// The database server's clock, milliseconds since the epoch (for the clock-skew check).
    pub async fn server_time_ms(&self) -> Result<i64, StoreError> {
        let sql = match DIALECT {
            Dialect::Postgres => "select (extract(epoch from clock_timestamp()) * 1000)::bigint",
            Dialect::MySql => "select cast(unix_timestamp(now(3)) * 1000 as signed)",
        };
        self.timed(sqlx::query_scalar::<Db, i64>(sql).fetch_one(&self.pool))
            .await
    }

    /// Versions of the migrations this build has and the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        // A database without the bookkeeping table has applied nothing.
        let applied: Vec<i64> = match sqlx::query_scalar::<Db, i64>(
            "select version from _sqlx_migrations where success",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(v) => v,
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("42P01" | "42S02")) =>
            {
                Vec::new()
            }
            Err(e) => return Err(map_err(e)),
        };
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    /// Closes the pool, waiting for statements in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one statement-level operation within the timeout.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(timed_out()),
        }
    }

    /// Runs a transaction within the timeout, again after a deadlock or serialisation failure.
    async fn transaction<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut attempt = 0;
        loop {
            match tokio::time::timeout(self.timeout, op()).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if attempt < RETRIES && is_retryable(&e) => attempt += 1,
                Ok(Err(e)) => return Err(map_err(e)),
            }
        }
    }

    async fn create_session_tx(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, sqlx::Error> {
        let now = session.created_at;
        let mut tx = self.pool.begin().await?;
        // Two logins of one user at once must not both count the same live sessions.
        sqlx::query(sql!("select id from users where id = ? for update"))
            .bind(session.user_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(sql!(&format!(
            "insert into sessions ({SESSION_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
            .bind(session.id.to_string())
            .bind(session.user_id.as_str())
            .bind(&session.nonce[..])
            .bind(&session.key_id)
            .bind(generation(session.generation))
            .bind(session.created_at.as_millis())
            .bind(session.rotated_at.as_millis())
            .bind(session.last_used_at.as_millis())
            .bind(session.idle_expires_at.as_millis())
            .bind(session.absolute_expires_at.as_millis())
            .bind(session.expires_at().as_millis())
            .bind(session.revoked.map(|r| r.at.as_millis()))
            .bind(session.revoked.map(|r| r.reason.as_str()))
            .bind(&session.client.client_id)
            .bind(&session.client.user_agent)
            .bind(&session.client.ip)
            .execute(&mut *tx)
            .await?;
        // The cap on live sessions: the new one counts first, then the newest; the oldest go.
        let live: Vec<String> = sqlx::query_scalar(sql!(
            "select id from sessions where user_id = ? and revoked_at is null and expires_at > ?
             order by created_at desc, id desc"
        ))
        .bind(session.user_id.as_str())
        .bind(now.as_millis())
        .fetch_all(&mut *tx)
        .await?;
        let new_id = session.id.to_string();
        let mut excess: Vec<&String> = live
            .iter()
            .filter(|id| **id != new_id)
            .skip(max_live.max(1) as usize - 1)
            .collect();
        // Rows are locked in id order in every transaction, so two never wait on each other.
        excess.sort();
        let mut entries = Vec::new();
        for id in excess {
            let sid = parse_sid(id)?;
            entries.extend(revoke_one(&mut tx, &sid, RevokeReason::SessionLimit, now, keep).await?);
        }
        append_log(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(entries)
    }

    async fn revoke_sessions_tx(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut entries = Vec::new();
        match selector {
            SessionSelector::One(sid) => {
                entries.extend(revoke_one(&mut tx, sid, reason, now, keep).await?);
            }
            SessionSelector::User { user_id, except } => {
                let except = except.map(|s| s.to_string());
                let ids: Vec<String> = sqlx::query_scalar(sql!(
                    "select id from sessions
                     where user_id = ? and revoked_at is null and (? is null or id <> ?)
                     order by id"
                ))
                .bind(user_id.as_str())
                .bind(&except)
                .bind(&except)
                .fetch_all(&mut *tx)
                .await?;
                for id in ids {
                    let sid = parse_sid(&id)?;
                    entries.extend(revoke_one(&mut tx, &sid, reason, now, keep).await?);
                }
            }
        }
        append_log(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(entries)
    }

    async fn record_tx(&self, entries: &[RevocationEntry]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        append_log(&mut tx, entries).await?;
        tx.commit().await
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, user: &NewUser, now: Timestamp) -> Result<User, StoreError> {
        let created = User {
            id: UserId::random(),
            username: user.username.clone(),
            password_hash: user.password_hash.clone(),
            roles: user.roles.clone(),
            blocked: false,
            cutoff: None,
            created_at: now,
        };
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let insert = sqlx::query(sql!(
            "insert into users (id, username, username_key, password_hash, roles, blocked, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(created.id.as_str())
        .bind(&created.username)
        .bind(created.username.to_lowercase())
        .bind(&created.password_hash)
        .bind(roles)
        .bind(false)
        .bind(now.as_millis())
        .bind(now.as_millis())
        .execute(&self.pool);
        self.timed(insert).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("username taken"),
            other => other,
        })?;
        Ok(created)
    }

    async fn import_user(&self, user: &User, now: Timestamp) -> Result<(), StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let insert = sqlx::query(sql!(
            "insert into users (id, username, username_key, password_hash, roles, blocked, cutoff_at, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.password_hash)
        .bind(roles)
        .bind(user.blocked)
        .bind(user.cutoff.map(Timestamp::as_millis))
        .bind(user.created_at.as_millis())
        .bind(now.as_millis())
        .execute(&self.pool);
        self.timed(insert).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("user id or username taken"),
            other => other,
        })
        .map(|_| ())
    }

    async fn login_failures(&self, account: &str) -> Result<Option<(u32, Timestamp)>, StoreError> {
        let row = self
            .timed(
                sqlx::query(sql!(
                    "select failures, last_at from login_failures where account = ?"
                ))
                .bind(account)
                .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| {
            let failures: i32 = r.try_get("failures").map_err(map_err)?;
            let last: i64 = r.try_get("last_at").map_err(map_err)?;
            Ok((
                u32::try_from(failures).unwrap_or(0),
                Timestamp::from_millis(last),
            ))
        })
        .transpose()
    }

    async fn record_login_failure(&self, account: &str, now: Timestamp) -> Result<u32, StoreError> {
        // One statement: concurrent failures on several instances are all counted.
        let failures: i32 = match DIALECT {
            Dialect::Postgres => {
                self.timed(
                    sqlx::query_scalar::<Db, i32>(
                        "insert into login_failures (account, failures, last_at) values ($1, 1, $2)
                         on conflict (account) do update
                         set failures = login_failures.failures + 1,
                             last_at = greatest(login_failures.last_at, excluded.last_at)
                         returning failures",
                    )
                    .bind(account)
                    .bind(now.as_millis())
                    .fetch_one(&self.pool),
                )
                .await?
            }
            Dialect::MySql => {
                // No `returning`: read the count back inside the transaction, which holds the
                // row lock its own increment took.
                let pool = &self.pool;
                self.transaction(|| async move {
                    let mut tx = pool.begin().await?;
                    sqlx::query(
                        "insert into login_failures (account, failures, last_at) values (?, 1, ?)
                         on duplicate key update failures = failures + 1,
                             last_at = greatest(last_at, values(last_at))",
                    )
                    .bind(account)
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    let failures = sqlx::query_scalar::<Db, i32>(
                        "select failures from login_failures where account = ?",
                    )
                    .bind(account)
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(failures)
                })
                .await?
            }
        };
        Ok(u32::try_from(failures).unwrap_or(0))
    }

    async fn clear_login_failures(&self, account: &str) -> Result<(), StoreError> {
        self.timed(
            sqlx::query(sql!("delete from login_failures where account = ?"))
                .bind(account)
                .execute(&self.pool),
        )
        .await
        .map(drop)
    }

    async fn purge_login_failures(&self, before: Timestamp, batch: u32) -> Result<u64, StoreError> {
        let statement = match DIALECT {
            Dialect::MySql => "delete from login_failures where last_at < ? limit ?",
            Dialect::Postgres => {
                "delete from login_failures where account in
                 (select account from login_failures where last_at < $1 limit $2)"
            }
        };
        Ok(self
            .timed(
                sqlx::query(statement)
                    .bind(before.as_millis())
                    .bind(i64::from(batch))
                    .execute(&self.pool),
            )
            .await?
            .rows_affected())
    }

    async fn keyring(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let row = self
            .timed(
                sqlx::query(sql!("select version, sealed from keyring where id = 1"))
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("version").map_err(map_err)?,
                r.try_get::<Vec<u8>, _>("sealed").map_err(map_err)?,
            ))
        })
        .transpose()
    }

    async fn swap_keyring(&self, expected: i64, sealed: &[u8]) -> Result<bool, StoreError> {
        if expected == 0 {
            let insert = sqlx::query(sql!(
                "insert into keyring (id, version, sealed) values (1, 1, ?)"
            ))
            .bind(sealed)
            .execute(&self.pool);
            return match self.timed(insert).await {
                Ok(_) => Ok(true),
                Err(StoreError::Conflict(_)) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let update = sqlx::query(sql!(
            "update keyring set version = version + 1, sealed = ? where id = 1 and version = ?"
        ))
        .bind(sealed)
        .bind(expected)
        .execute(&self.pool);
        Ok(self.timed(update).await?.rows_affected() == 1)
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = self
            .timed(
                sqlx::query(sql!(&format!(
                    "select {USER_COLUMNS} from users where id = ?"
                )))
                .bind(id.as_str())
                .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = self
            .timed(
                sqlx::query(sql!(&format!(
                    "select {USER_COLUMNS} from users where username_key = ?"
                )))
                .bind(username.to_lowercase())
                .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let after = after.map(UserId::as_str);
        let rows = self
            .timed(
                sqlx::query(sql!(&format!(
                    "select {USER_COLUMNS} from users
             where ? is null or (created_at, id) > (select created_at, id from users where id = ?)
             order by created_at, id limit ?"
                )))
                .bind(after)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        phc: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let update = sqlx::query(sql!(
            "update users set password_hash = ?, updated_at = ? where id = ?"
        ))
        .bind(phc)
        .bind(now.as_millis())
        .bind(id.as_str())
        .execute(&self.pool);
        Ok(self.timed(update).await?.rows_affected() == 1)
    }

    async fn set_blocked(
        &self,
        id: &UserId,
        blocked: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let update = sqlx::query(sql!(
            "update users set blocked = ?, updated_at = ? where id = ?"
        ))
        .bind(blocked)
        .bind(now.as_millis())
        .bind(id.as_str())
        .execute(&self.pool);
        Ok(self.timed(update).await?.rows_affected() == 1)
    }

    async fn raise_cutoff(&self, id: &UserId, at: Timestamp) -> Result<bool, StoreError> {
        let update = sqlx::query(sql!(
            "update users set cutoff_at = greatest(coalesce(cutoff_at, ?), ?) where id = ?"
        ))
        .bind(at.as_millis())
        .bind(at.as_millis())
        .bind(id.as_str())
        .execute(&self.pool);
        Ok(self.timed(update).await?.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let delete = sqlx::query(sql!("delete from users where id = ?"))
            .bind(id.as_str())
            .execute(&self.pool);
        Ok(self.timed(delete).await?.rows_affected() == 1)
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.transaction(|| self.create_session_tx(session, max_live, keep))
            .await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let row = self
            .timed(
                sqlx::query(sql!(&format!(
                    "select {SESSION_COLUMNS} from sessions where id = ?"
                )))
                .bind(id.to_string())
                .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError> {
        // One statement: the compare (generation, not revoked) and the set happen atomically.
        let update = sqlx::query(sql!(
            "update sessions
             set generation = ?, rotated_at = ?, last_used_at = ?, idle_expires_at = ?, expires_at = ?
             where id = ? and generation = ? and revoked_at is null"
        ))
        .bind(generation(next.generation))
        .bind(next.rotated_at.as_millis())
        .bind(next.last_used_at.as_millis())
        .bind(next.idle_expires_at.as_millis())
        .bind(next.expires_at().as_millis())
        .bind(next.id.to_string())
        .bind(generation(expected_generation))
        .execute(&self.pool);
        Ok(self.timed(update).await?.rows_affected() == 1)
    }

    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.transaction(|| self.revoke_sessions_tx(selector, reason, now, keep))
            .await
    }

    async fn record(&self, entries: &[RevocationEntry], _now: Timestamp) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.transaction(|| self.record_tx(entries)).await
    }

    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = self
            .timed(
                sqlx::query(sql!(&format!(
                    "select {SESSION_COLUMNS} from sessions
             where user_id = ? and revoked_at is null and expires_at > ?
             order by created_at desc, id desc"
                )))
                .bind(user_id.as_str())
                .bind(now.as_millis())
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<Option<u64>, StoreError> {
        let n: i64 = self
            .timed(
                sqlx::query_scalar::<Db, i64>(sql!(
                    "select count(*) from sessions where revoked_at is null and expires_at > ?"
                ))
                .bind(now.as_millis())
                .fetch_one(&self.pool),
            )
            .await?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<RevocationBatch, StoreError> {
        let mut cursor = cursor;
        let rows = loop {
            let from = i64::try_from(cursor).unwrap_or(i64::MAX);
            let rows = self
                .timed(
                    sqlx::query(sql!(
                        "select seq, kind, subject, at, until from revocations
                         where seq > ? order by seq limit ?"
                    ))
                    .bind(from)
                    .bind(LOG_PAGE)
                    .fetch_all(&self.pool),
                )
                .await?;
            if !rows.is_empty() || cursor == 0 {
                break rows;
            }
            // Nothing new: make sure the log did not go back below the cursor (a database
            // restored from a backup), which would hide every entry written since.
            let head: i64 = self
                .timed(
                    sqlx::query_scalar(sql!("select seq from revocation_head where id = 1"))
                        .fetch_one(&self.pool),
                )
                .await?;
            if head >= from {
                break rows;
            }
            tracing::warn!(cursor, head, "the revocation log went back; reading it from its start");
            cursor = 0;
        };
        let mut batch = RevocationBatch {
            entries: Vec::with_capacity(rows.len()),
            cursor,
            more: rows.len() as i64 == LOG_PAGE,
        };
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(map_err)?;
            batch.cursor = u64::try_from(seq).map_err(|_| corrupt("revocation seq"))?;
            let entry = entry_from_row(&row)?;
            if entry.until() > now {
                batch.entries.push(entry);
            }
        }
        Ok(batch)
    }

    async fn purge(&self, now: Timestamp, keep: Duration, batch: u32) -> Result<u64, StoreError> {
        // Small batches: each delete holds its row locks only briefly. Sessions first (past
        // expiry by `keep`, so a revoked session's entry outlives nothing it protects), then
        // log entries past their time. Sequence numbers come from revocation_head, never from
        // the table, so the feed's cursor stays valid even when the log empties.
        let (sessions_sql, log_sql) = match DIALECT {
            Dialect::MySql => (
                "delete from sessions where expires_at <= ? limit ?",
                "delete from revocations where until <= ? limit ?",
            ),
            Dialect::Postgres => (
                "delete from sessions where id in
                 (select id from sessions where expires_at <= $1 limit $2)",
                "delete from revocations where seq in
                 (select seq from revocations where until <= $1 limit $2)",
            ),
        };
        let sessions = self
            .timed(
                sqlx::query(sessions_sql)
                    .bind(now.minus(keep).as_millis())
                    .bind(i64::from(batch))
                    .execute(&self.pool),
            )
            .await?
            .rows_affected();
        let revocations = self
            .timed(
                sqlx::query(log_sql)
                    .bind(now.as_millis())
                    .bind(i64::from(batch))
                    .execute(&self.pool),
            )
            .await?
            .rows_affected();
        Ok(sessions + revocations)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(sqlx::query("select 1").execute(&self.pool))
            .await
            .map(drop)
    }

    fn revocation_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.signal.get_or_init(|| bus(&self.connect)).clone()
    }
}

/// Revokes one live session inside `tx`. `None` if it was not live. The entry is appended to
/// the log by the caller, after every row lock the transaction needs is held.
async fn revoke_one(
    tx: &mut Transaction<'_, Db>,
    sid: &SessionId,
    reason: RevokeReason,
    now: Timestamp,
    keep: Duration,
) -> Result<Option<RevocationEntry>, sqlx::Error> {
    let done = sqlx::query(sql!(
        "update sessions set revoked_at = ?, revoke_reason = ? where id = ? and revoked_at is null"
    ))
    .bind(now.as_millis())
    .bind(reason.as_str())
    .bind(sid.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(
        (done.rows_affected() == 1).then(|| RevocationEntry::RevokedSession {
            sid: *sid,
            at: now,
            until: now.plus(keep),
        }),
    )
}

/// Appends entries to the log with the next sequence numbers. The lock on revocation_head is
/// taken last in the transaction and held to its commit: entries become visible in the order
/// of their sequence numbers (see the module docs).
async fn append_log(
    tx: &mut Transaction<'_, Db>,
    entries: &[RevocationEntry],
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let head: i64 = sqlx::query_scalar(sql!(
        "select seq from revocation_head where id = 1 for update"
    ))
    .fetch_one(&mut **tx)
    .await?;
    let mut seq = head;
    for entry in entries {
        seq += 1;
        let (kind, subject, at, until) = entry_row(entry);
        sqlx::query(sql!(
            "insert into revocations (seq, kind, subject, at, until) values (?, ?, ?, ?, ?)"
        ))
        .bind(seq)
        .bind(kind)
        .bind(subject)
        .bind(at)
        .bind(until)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(sql!("update revocation_head set seq = ? where id = 1"))
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    if let Some(announce) = ANNOUNCE {
        sqlx::query(announce).execute(&mut **tx).await?;
    }
    Ok(())
}

fn generation(g: u64) -> i64 {
    i64::try_from(g).unwrap_or(i64::MAX)
}

fn parse_sid(text: &str) -> Result<SessionId, sqlx::Error> {
    text.parse()
        .map_err(|_| sqlx::Error::Decode("corrupt row: session id".into()))
}
