//! Opening the stores the configuration names: the SQL database (users, and sessions with
//! `session_store = "sql"`), and Redis for `redis` or `tiered` sessions.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tessera_store::redis::cache::SessionCache;
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sql::mysql::MySqlStore;
use tessera_store::sql::postgres::PgStore;
use tessera_store::sql::{OnConnect, SqlOptions};
use tessera_store::sqlite::{Durability, SqliteStore};
use tessera_store::tiered::TieredStore;
use tessera_store::{SessionStore, UserStore};

use crate::config::{Database, SessionStoreKind, Settings, SqliteSync};
use crate::datadir::DataDir;

/// The SQL database: whichever backend the URL names.
#[derive(Debug, Clone)]
pub enum SqlDatabase {
    /// SQLite (embedded).
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
    /// MySQL or MariaDB.
    MySql(MySqlStore),
}

impl SqlDatabase {
    /// Opens the database of `settings`. With `for_migrate`, the schema is left alone for the
    /// caller to [`migrate`](Self::migrate) (the `tessera migrate` command); otherwise it is
    /// migrated or required to be current, as `auto_migrate` says.
    pub async fn open(
        settings: &Settings,
        data_dir: &DataDir,
        for_migrate: bool,
    ) -> anyhow::Result<Self> {
        let durability = match settings.sqlite_synchronous {
            SqliteSync::Full => Durability::PowerLoss,
            SqliteSync::Normal => Durability::Process,
        };
        let server = |url: &str| SqlOptions {
            url: url.to_owned(),
            max_connections: settings.database_max_connections,
            timeout: settings.database_timeout,
            migrations: match (for_migrate, settings.auto_migrate) {
                (true, _) => OnConnect::Nothing,
                (false, true) => OnConnect::Migrate,
                (false, false) => OnConnect::RequireCurrent,
            },
        };
        let db = match settings.database() {
            Database::EmbeddedSqlite => {
                SqlDatabase::Sqlite(SqliteStore::open_with(&data_dir.database()?, durability).await?)
            }
            Database::Sqlite(url) => SqlDatabase::Sqlite(SqliteStore::open_url(url, durability).await?),
            Database::Postgres(url) => SqlDatabase::Postgres(PgStore::connect(&server(url)).await?),
            Database::MySql(url) => SqlDatabase::MySql(MySqlStore::connect(&server(url)).await?),
            Database::Unsupported(scheme) => anyhow::bail!(
                "database_url (TESSERA_DATABASE_URL): unknown scheme {scheme:?}; use sqlite://, postgres:// or mysql://"
            ),
        };
        Ok(db)
    }

    /// Applies pending migrations (SQLite applies its own at open). Returns their versions.
    pub async fn migrate(&self) -> anyhow::Result<Vec<i64>> {
        Ok(match self {
            SqlDatabase::Sqlite(_) => Vec::new(),
            SqlDatabase::Postgres(db) => db.migrate().await?,
            SqlDatabase::MySql(db) => db.migrate().await?,
        })
    }

    /// Versions of the migrations not yet applied (SQLite applies its own at open: none).
    pub async fn pending_migrations(&self) -> anyhow::Result<Vec<i64>> {
        Ok(match self {
            SqlDatabase::Sqlite(_) => Vec::new(),
            SqlDatabase::Postgres(db) => db.pending_migrations().await?,
            SqlDatabase::MySql(db) => db.pending_migrations().await?,
        })
    }

    /// The database server's clock in milliseconds since the epoch; `None` for SQLite, which
    /// runs on this machine's clock.
    pub async fn server_time_ms(&self) -> anyhow::Result<Option<i64>> {
        Ok(match self {
            SqlDatabase::Sqlite(_) => None,
            SqlDatabase::Postgres(db) => Some(db.server_time_ms().await?),
            SqlDatabase::MySql(db) => Some(db.server_time_ms().await?),
        })
    }

    /// The database as the user store.
    pub fn users(&self) -> Arc<dyn UserStore> {
        match self {
            SqlDatabase::Sqlite(db) => Arc::new(db.clone()),
            SqlDatabase::Postgres(db) => Arc::new(db.clone()),
            SqlDatabase::MySql(db) => Arc::new(db.clone()),
        }
    }

    /// The database as the session store.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        match self {
            SqlDatabase::Sqlite(db) => Arc::new(db.clone()),
            SqlDatabase::Postgres(db) => Arc::new(db.clone()),
            SqlDatabase::MySql(db) => Arc::new(db.clone()),
        }
    }

    /// Closes the connections, waiting for statements in flight.
    pub async fn close(&self) {
        match self {
            SqlDatabase::Sqlite(db) => db.close().await,
            SqlDatabase::Postgres(db) => db.close().await,
            SqlDatabase::MySql(db) => db.close().await,
        }
    }
}

/// Opens the session store `settings.session_store` names, over `db` where it is SQL.
/// `keep`: how long revocation entries and session keys outlive what they protect.
pub async fn session_store(
    settings: &Settings,
    db: &SqlDatabase,
    keep: Duration,
) -> anyhow::Result<Arc<dyn SessionStore>> {
    let redis = || RedisOptions {
        url: settings.redis_url.clone(),
        prefix: settings.redis_prefix.clone(),
        timeout: settings.redis_timeout,
        accept_eviction: settings.redis_accept_eviction,
        keep,
        ca_file: settings.redis_ca_file.clone(),
    };
    Ok(match settings.session_store {
        SessionStoreKind::Sql => db.sessions(),
        SessionStoreKind::Redis => Arc::new(
            RedisStore::connect(redis())
                .await
                .context("while connecting to redis (redis_url)")?,
        ),
        SessionStoreKind::Tiered => {
            let cache = SessionCache::connect(redis())
                .await
                .context("while connecting to redis (redis_url)")?;
            Arc::new(TieredStore::new(db.sessions(), cache, keep))
        }
    })
}
