//! The embedded store: one SQLite database in WAL mode, zero set-up.
//!
//! Writes go through a pool of ONE connection (SQLite has one writer at a time anyway; this keeps
//! writers queued in Tokio instead of spinning on `SQLITE_BUSY`); reads use a pool of several.
//! Rotations, the hot write, are group-committed: those waiting at one moment share one
//! transaction and one fsync (`group_commit.rs`).
//! `synchronous = FULL` by default: a rotation or logout that was acknowledged survives a power
//! cut. [`Durability::Process`] (`synchronous = NORMAL`) survives a crash of the process but may
//! lose the last transactions on a power cut, for many times the write rate (BENCHMARKS.md).
//! Other processes on the same file (the `tessera user …` commands) wait on `busy_timeout`.

mod group_commit;
mod rows;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};
use tessera_core::ids::{SessionId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{RevokeReason, Session};
use tessera_core::Timestamp;

use crate::{NewUser, RevocationBatch, SessionSelector, SessionStore, StoreError, User, UserStore};
use rows::{entry_row, map_err, session_from_row, user_from_row, SESSION_COLUMNS, USER_COLUMNS};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a request waits for a connection or a lock before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// What an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A power cut (`synchronous = FULL`: one fsync per commit).
    #[default]
    PowerLoss,
    /// A crash of the process, not of the machine (`synchronous = NORMAL` in WAL mode).
    Process,
}

impl Durability {
    fn synchronous(self) -> SqliteSynchronous {
        match self {
            Durability::PowerLoss => SqliteSynchronous::Full,
            Durability::Process => SqliteSynchronous::Normal,
        }
    }
}

/// The SQLite backend: users, sessions and revocations in one database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    rotations: group_commit::Rotations,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::default()).await
    }

    /// Opens the database at `path` with the given durability.
    pub async fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(durability.synchronous())
            .foreign_keys(true)
            .busy_timeout(ACQUIRE_TIMEOUT);
        Self::connect(options).await
    }

    /// Opens a database given as a `sqlite://` URL.
    pub async fn open_url(url: &str, durability: Durability) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(Box::new(e)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(durability.synchronous())
            .busy_timeout(ACQUIRE_TIMEOUT);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .map_err(map_err)?;
        let rotations = group_commit::Rotations::start(writer.clone());
        Ok(Self {
            reader,
            writer,
            rotations,
        })
    }

    /// Writes a consistent copy of the live database to `dest` (`VACUUM INTO`), safe while serving.
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let dest = dest
            .to_str()
            .ok_or(StoreError::Conflict("backup path is not UTF-8"))?;
        sqlx::query("vacuum into ?")
            .bind(dest)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Checks that the file at `path` is an intact Tessera database (`PRAGMA integrity_check`,
    /// and the tables are there), opening it read-only. Returns the number of sessions in it.
    pub async fn check_file(path: &Path) -> Result<i64, StoreError> {
        use sqlx::Connection as _;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(map_err)?;
        let verdict: String = sqlx::query_scalar("pragma integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(map_err)?;
        if verdict != "ok" {
            return Err(StoreError::Backend(
                format!("{} is damaged: {verdict}", path.display()).into(),
            ));
        }
        let sessions: i64 = sqlx::query_scalar("select count(*) from sessions")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| {
                StoreError::Backend(
                    format!("{} is no Tessera database: {e}", path.display()).into(),
                )
            })?;
        let _ = conn.close().await;
        Ok(sessions)
    }

    /// Closes both pools, waiting for in-flight statements.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl UserStore for SqliteStore {
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
        sqlx::query(
            "insert into users (id, username, username_key, password_hash, roles, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(created.id.as_str())
        .bind(&created.username)
        .bind(created.username.to_lowercase())
        .bind(&created.password_hash)
        .bind(roles)
        .bind(now.as_millis())
        .bind(now.as_millis())
        .execute(&self.writer)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("username taken"),
            other => other,
        })?;
        Ok(created)
    }

    async fn import_user(&self, user: &User, now: Timestamp) -> Result<(), StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(Box::new(e)))?;
        sqlx::query(
            "insert into users (id, username, username_key, password_hash, roles, blocked, cutoff_at, created_at, updated_at)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.password_hash)
        .bind(roles)
        .bind(user.blocked)
        .bind(user.cutoff.map(Timestamp::as_millis))
        .bind(user.created_at.as_millis())
        .bind(now.as_millis())
        .execute(&self.writer)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("user id or username taken"),
            other => other,
        })?;
        Ok(())
    }

    async fn login_failures(&self, account: &str) -> Result<Option<(u32, Timestamp)>, StoreError> {
        let row = sqlx::query("select failures, last_at from login_failures where account = ?")
            .bind(account)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            let failures: i64 = r.try_get("failures").map_err(map_err)?;
            let last: i64 = r.try_get("last_at").map_err(map_err)?;
            Ok((
                u32::try_from(failures).unwrap_or(0),
                Timestamp::from_millis(last),
            ))
        })
        .transpose()
    }

    async fn record_login_failure(&self, account: &str, now: Timestamp) -> Result<u32, StoreError> {
        let failures: i64 = sqlx::query_scalar(
            "insert into login_failures (account, failures, last_at) values (?, 1, ?)
             on conflict (account) do update
             set failures = login_failures.failures + 1,
                 last_at = max(login_failures.last_at, excluded.last_at)
             returning failures",
        )
        .bind(account)
        .bind(now.as_millis())
        .fetch_one(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(u32::try_from(failures).unwrap_or(0))
    }

    async fn clear_login_failures(&self, account: &str) -> Result<(), StoreError> {
        sqlx::query("delete from login_failures where account = ?")
            .bind(account)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn purge_login_failures(&self, before: Timestamp, batch: u32) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "delete from login_failures where rowid in
             (select rowid from login_failures where last_at < ? limit ?)",
        )
        .bind(before.as_millis())
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    async fn keyring(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let row = sqlx::query("select version, sealed from keyring where id = 1")
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("version").map_err(map_err)?,
                r.try_get::<Vec<u8>, _>("sealed").map_err(map_err)?,
            ))
        })
        .transpose()
    }

    async fn swap_keyring(&self, expected: i64, sealed: &[u8]) -> Result<bool, StoreError> {
        let statement = if expected == 0 {
            sqlx::query("insert or ignore into keyring (id, version, sealed) values (1, 1, ?)")
                .bind(sealed)
        } else {
            sqlx::query(
                "update keyring set version = version + 1, sealed = ? where id = 1 and version = ?",
            )
            .bind(sealed)
            .bind(expected)
        };
        let done = statement.execute(&self.writer).await.map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("select {USER_COLUMNS} from users where id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("select {USER_COLUMNS} from users where username_key = ?");
        let row = sqlx::query(&sql)
            .bind(username.to_lowercase())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            "select {USER_COLUMNS} from users
             where ?1 is null or (created_at, id) > (select created_at, id from users where id = ?1)
             order by created_at, id limit ?2"
        );
        let rows = sqlx::query(&sql)
            .bind(after.map(UserId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        phc: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("update users set password_hash = ?, updated_at = ? where id = ?")
            .bind(phc)
            .bind(now.as_millis())
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_blocked(
        &self,
        id: &UserId,
        blocked: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("update users set blocked = ?, updated_at = ? where id = ?")
            .bind(blocked)
            .bind(now.as_millis())
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn raise_cutoff(&self, id: &UserId, at: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update users set cutoff_at = max(coalesce(cutoff_at, ?1), ?1) where id = ?2",
        )
        .bind(at.as_millis())
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let done = sqlx::query("delete from users where id = ?")
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        let now = session.created_at;
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query(&format!(
            "insert into sessions ({SESSION_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(session.id.to_string())
        .bind(session.user_id.as_str())
        .bind(&session.nonce[..])
        .bind(&session.key_id)
        .bind(i64::try_from(session.generation).unwrap_or(i64::MAX))
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
        .await
        .map_err(map_err)?;
        // The cap on live sessions: the oldest go first, in the same transaction as the insert.
        let excess: Vec<String> = sqlx::query_scalar(
            "select id from sessions
             where user_id = ?1 and revoked_at is null and expires_at > ?2
             order by id = ?4 desc, created_at desc, rowid desc limit -1 offset ?3",
        )
        .bind(session.user_id.as_str())
        .bind(now.as_millis())
        .bind(i64::from(max_live.max(1)))
        .bind(session.id.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut entries = Vec::with_capacity(excess.len());
        for id in excess {
            let sid = rows::parse_sid(&id)?;
            entries.push(revoke_one(&mut tx, &sid, RevokeReason::SessionLimit, now, keep).await?);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(entries.into_iter().flatten().collect())
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let sql = format!("select {SESSION_COLUMNS} from sessions where id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError> {
        self.rotations
            .rotate(group_commit::Rotation {
                id: next.id.to_string(),
                expected_generation: i64::try_from(expected_generation).unwrap_or(i64::MAX),
                generation: i64::try_from(next.generation).unwrap_or(i64::MAX),
                rotated_at: next.rotated_at.as_millis(),
                last_used_at: next.last_used_at.as_millis(),
                idle_expires_at: next.idle_expires_at.as_millis(),
                expires_at: next.expires_at().as_millis(),
            })
            .await
    }

    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let mut entries = Vec::new();
        match selector {
            SessionSelector::One(sid) => {
                entries.extend(revoke_one(&mut tx, sid, reason, now, keep).await?);
            }
            SessionSelector::User { user_id, except } => {
                let ids: Vec<String> = sqlx::query_scalar(
                    "select id from sessions where user_id = ? and revoked_at is null and id is not ?",
                )
                .bind(user_id.as_str())
                .bind(except.map(|s| s.to_string()))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                for id in ids {
                    let sid = rows::parse_sid(&id)?;
                    entries.extend(revoke_one(&mut tx, &sid, reason, now, keep).await?);
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(entries)
    }

    async fn record(&self, entries: &[RevocationEntry], _now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        for entry in entries {
            insert_entry(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "select {SESSION_COLUMNS} from sessions
             where user_id = ? and revoked_at is null and expires_at > ?
             order by created_at desc, id desc"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id.as_str())
            .bind(now.as_millis())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<Option<u64>, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from sessions where revoked_at is null and expires_at > ?",
        )
        .bind(now.as_millis())
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<RevocationBatch, StoreError> {
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "select seq, kind, subject, at, until from revocations where seq > ? order by seq",
        )
        .bind(cursor)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let mut batch = RevocationBatch {
            entries: Vec::with_capacity(rows.len()),
            cursor: cursor as u64,
            more: false,
        };
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(map_err)?;
            batch.cursor = seq as u64;
            let entry = rows::entry_from_row(&row)?;
            if entry.until() > now {
                batch.entries.push(entry);
            }
        }
        Ok(batch)
    }

    async fn purge(&self, now: Timestamp, keep: Duration, batch: u32) -> Result<u64, StoreError> {
        // Small batches by rowid: each delete holds the write lock only briefly.
        let sessions = sqlx::query(
            "delete from sessions where rowid in
             (select rowid from sessions where expires_at <= ? limit ?)",
        )
        .bind(now.minus(keep).as_millis())
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        // Revocation entries go once their time has passed. `autoincrement` never reuses a
        // sequence number, so the feed's cursor stays valid even when the table empties.
        let revocations = sqlx::query(
            "delete from revocations where seq in
             (select seq from revocations where until <= ? limit ?)",
        )
        .bind(now.as_millis())
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(sessions + revocations)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// Revokes one live session inside `tx` and records its entry. `None` if it was not live.
async fn revoke_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    sid: &SessionId,
    reason: RevokeReason,
    now: Timestamp,
    keep: Duration,
) -> Result<Option<RevocationEntry>, StoreError> {
    let done = sqlx::query(
        "update sessions set revoked_at = ?, revoke_reason = ? where id = ? and revoked_at is null",
    )
    .bind(now.as_millis())
    .bind(reason.as_str())
    .bind(sid.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let entry = RevocationEntry::RevokedSession {
        sid: *sid,
        at: now,
        until: now.plus(keep),
    };
    insert_entry(tx, &entry).await?;
    Ok(Some(entry))
}

async fn insert_entry(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    entry: &RevocationEntry,
) -> Result<(), StoreError> {
    let (kind, subject, at, until) = entry_row(entry);
    sqlx::query("insert into revocations (kind, subject, at, until) values (?, ?, ?, ?)")
        .bind(kind)
        .bind(subject)
        .bind(at)
        .bind(until)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}
