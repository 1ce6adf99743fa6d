//! `tessera doctor`: checks the configuration and every configured store, and says what to fix.
//!
//! Read-only: it creates no key, applies no migration and writes no key to Redis. Each check
//! answers `ok`, `warn` (works, but an operator should know) or `FAIL` (Tessera will not work,
//! or not safely); the command exits non-zero when any check fails.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Database, SessionStoreKind, Settings};
use crate::datadir::{self, Access, DataDir};
use crate::stores::SqlDatabase;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but should be looked at.
    Warn,
    /// Broken or unsafe.
    Fail,
}

/// One check and what it found.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found, and what to do about it.
    pub detail: String,
}

/// Every check, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, name: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            writeln!(f, "{status:<5} {:<26} {}", c.name, c.detail)?;
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        match (failed, warned) {
            (0, 0) => writeln!(f, "\nall checks passed"),
            (0, w) => writeln!(f, "\nno problem; {w} warning(s)"),
            (n, w) => writeln!(f, "\n{n} problem(s) to fix; {w} warning(s)"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A clock difference, judged against the leeway tokens are checked with.
fn skew(report: &mut Report, name: &str, theirs_ms: i64, leeway: Duration) {
    let skew = Duration::from_millis((theirs_ms - now_ms()).unsigned_abs());
    let text = format!(
        "clock differs from this machine's by {} ms",
        skew.as_millis()
    );
    let status = if skew > leeway {
        Status::Fail
    } else if skew > Duration::from_secs(1) {
        Status::Warn
    } else {
        Status::Ok
    };
    let advice = match status {
        Status::Ok => String::new(),
        _ => format!(
            "; keep clocks in sync (NTP): tokens tolerate {}s",
            leeway.as_secs()
        ),
    };
    report.add(name, status, format!("{text}{advice}"));
}

/// Runs every check for `settings` (already loaded and validated).
pub async fn run(settings: &Settings) -> Report {
    let mut report = Report::default();
    configuration(&mut report, settings);
    let data_dir = data_directory(&mut report, settings);
    database(&mut report, settings, data_dir.as_ref()).await;
    if settings.session_store != SessionStoreKind::Sql {
        redis(&mut report, settings).await;
    }
    report
}

fn configuration(report: &mut Report, settings: &Settings) {
    let store = match settings.session_store {
        SessionStoreKind::Sql => "sql",
        SessionStoreKind::Redis => "redis",
        SessionStoreKind::Tiered => "tiered",
    };
    report.add(
        "configuration",
        Status::Ok,
        format!(
            "valid; listen {}, issuer {}, session store {store}",
            settings.listen,
            settings.issuer()
        ),
    );
    for name in Settings::unknown_env_vars() {
        report.add(
            "configuration",
            Status::Warn,
            format!("{name} names no setting (a typo?); it is ignored"),
        );
    }
    match settings.admin_key() {
        Ok(Some(_)) => report.add("admin API", Status::Ok, "an admin API key is configured"),
        Ok(None) => report.add(
            "admin API",
            Status::Ok,
            "no admin API key: only users with the admin role reach the admin API",
        ),
        Err(e) => report.add("admin API", Status::Fail, e.to_string()),
    }
}

fn data_directory(report: &mut Report, settings: &Settings) -> Option<DataDir> {
    let path = &settings.data_dir;
    if !path.exists() {
        report.add(
            "data directory",
            Status::Warn,
            format!(
                "{} does not exist yet; the first start creates it (mode 0700) with new keys",
                path.display()
            ),
        );
        return None;
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report.add(
            "data directory",
            Status::Warn,
            format!(
                "{} is open to other users (mode {:o}); run `chmod 700 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            ),
        ),
        Ok(_) => report.add(
            "data directory",
            Status::Ok,
            format!("{} (mode 0700)", path.display()),
        ),
        Err(e) => report.add(
            "data directory",
            Status::Fail,
            format!("{}: {e}", path.display()),
        ),
    }
    let shared = matches!(settings.master_key_text(), Ok(Some(_)));
    match datadir::inspect_keys(path) {
        _ if shared => report.add(
            "keys",
            Status::Ok,
            "shared: in the database, sealed under master_key (checked with the database)",
        ),
        Ok(Some((signing, refresh))) => report.add(
            "keys",
            Status::Ok,
            format!("{signing} signing key(s), {refresh} refresh key(s), mode 0600"),
        ),
        Ok(None) => report.add(
            "keys",
            Status::Warn,
            "no keys.json yet: the first start creates the keys (instances sharing a store need the same file)",
        ),
        Err(e) => report.add("keys", Status::Fail, format!("{e:#}")),
    }
    match DataDir::open(path, Access::Shared) {
        Ok(dir) => {
            if !dir.is_locked() {
                report.add(
                    "data directory",
                    Status::Ok,
                    "a Tessera server is running on it",
                );
            }
            Some(dir)
        }
        Err(e) => {
            report.add("data directory", Status::Fail, format!("{e:#}"));
            None
        }
    }
}

async fn database(report: &mut Report, settings: &Settings, data_dir: Option<&DataDir>) {
    // SQLite is looked at read-only, never opened the way the server opens it (which creates
    // the file and applies migrations).
    let sqlite_file = match settings.database() {
        Database::EmbeddedSqlite => Some(settings.data_dir.join("tessera.db")),
        Database::Sqlite(url) => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            Some(std::path::PathBuf::from(
                path.split('?').next().unwrap_or(path),
            ))
        }
        _ => None,
    };
    if let Some(file) = sqlite_file {
        if !file.exists() {
            report.add(
                "database",
                Status::Warn,
                format!(
                    "{} does not exist yet; the first start creates it",
                    file.display()
                ),
            );
            return;
        }
        match tessera_store::sqlite::SqliteStore::check_file(&file).await {
            Ok(sessions) => report.add(
                "database",
                Status::Ok,
                format!(
                    "SQLite {} intact ({sessions} session rows); its schema is migrated at start",
                    file.display()
                ),
            ),
            Err(e) => report.add(
                "database",
                Status::Fail,
                format!("SQLite {}: {e}", file.display()),
            ),
        }
        return;
    }
    // A server database: the data directory plays no part, a throwaway one will do.
    match data_dir {
        Some(dir) => database_in(report, settings, dir).await,
        None => match tempfile::tempdir()
            .map_err(anyhow::Error::from)
            .and_then(|tmp| Ok((DataDir::open(tmp.path(), Access::Shared)?, tmp)))
        {
            Ok((dir, _tmp)) => database_in(report, settings, &dir).await,
            Err(e) => report.add(
                "database",
                Status::Fail,
                format!("no temporary directory: {e}"),
            ),
        },
    }
}

/// `url` (or comma-separated URLs) without user information: a password lives there.
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://[redacted]@{}", &one[..scheme], &one[at + 1..])
            }
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn database_in(report: &mut Report, settings: &Settings, data_dir: &DataDir) {
    let what = match settings.database() {
        Database::EmbeddedSqlite | Database::Sqlite(_) => "SQLite",
        Database::Postgres(_) => "PostgreSQL",
        Database::MySql(_) => "MySQL",
        Database::Unsupported(_) => "database",
    };
    // Connection only: the migrations are looked at, not applied.
    let db = match SqlDatabase::open(settings, data_dir, true).await {
        Ok(db) => db,
        Err(e) => {
            report.add(
                "database",
                Status::Fail,
                format!("{what}: cannot open: {e:#}"),
            );
            return;
        }
    };
    match db.pending_migrations().await {
        Ok(pending) if pending.is_empty() => {
            report.add(
                "database",
                Status::Ok,
                format!("{what} reachable, schema current"),
            );
        }
        Ok(pending) => {
            let status = if settings.auto_migrate {
                Status::Warn
            } else {
                Status::Fail
            };
            report.add(
                "database",
                status,
                format!(
                    "{what} reachable; {} migration(s) pending: {}",
                    pending.len(),
                    if settings.auto_migrate {
                        "the next start applies them"
                    } else {
                        "run `tessera migrate` (auto_migrate is off)"
                    }
                ),
            );
        }
        Err(e) => report.add(
            "database",
            Status::Fail,
            format!("{what} unreachable: {e:#}; check database_url and that the server is up"),
        ),
    }
    if let Ok(Some(master)) = settings.master_key_text() {
        use secrecy::ExposeSecret as _;
        match crate::keyring::inspect_shared(db.users().as_ref(), master.expose_secret()).await {
            Ok(Some((version, signing, refresh))) => report.add(
                "shared keys",
                Status::Ok,
                format!(
                    "the key ring (version {version}) opens with master_key: {signing} signing \
                     key(s), {refresh} refresh key(s)"
                ),
            ),
            Ok(None) => report.add(
                "shared keys",
                Status::Warn,
                "no key ring in the database yet: the first start creates it (carrying over \
                 keys.json if the data directory has one)",
            ),
            Err(e) => report.add("shared keys", Status::Fail, format!("{e:#}")),
        }
    }
    match db.server_time_ms().await {
        Ok(Some(theirs)) => skew(report, "database clock", theirs, settings.leeway),
        Ok(None) => {}
        Err(_) => {} // unreachable: reported above
    }
    db.close().await;
}

async fn redis(report: &mut Report, settings: &Settings) {
    let options = tessera_store::redis::RedisOptions {
        url: settings.redis_url.clone(),
        prefix: settings.redis_prefix.clone(),
        timeout: settings.redis_timeout,
        accept_eviction: settings.redis_accept_eviction,
        keep: Duration::ZERO,
        ca_file: settings.redis_ca_file.clone(),
    };
    let nodes = match tessera_store::redis::inspect(&options).await {
        Ok(nodes) => nodes,
        Err(e) => {
            report.add(
                "redis",
                Status::Fail,
                format!(
                    "unreachable at {}: {e}; check redis_url and that Redis is up",
                    redacted(&settings.redis_url)
                ),
            );
            return;
        }
    };
    for node in nodes {
        let shown = redacted(&node.node);
        let name = format!(
            "redis {}",
            shown
                .trim_start_matches("redis://")
                .trim_start_matches("rediss://")
        );
        if node.maxmemory_policy == "noeviction" {
            report.add(
                name.clone(),
                Status::Ok,
                "reachable, maxmemory-policy noeviction",
            );
        } else {
            let status = if settings.redis_accept_eviction {
                Status::Warn
            } else {
                Status::Fail
            };
            report.add(
                name.clone(),
                status,
                format!(
                    "maxmemory-policy is {}: Redis may evict Tessera's keys and so un-revoke logged-out tokens; set `maxmemory-policy noeviction`",
                    node.maxmemory_policy
                ),
            );
        }
        // With sessions only in Redis, a Redis that keeps nothing logs everybody out on restart.
        if settings.session_store == SessionStoreKind::Redis {
            if node.appendonly == "yes" {
                report.add(name.clone(), Status::Ok, "persistence: AOF on");
            } else {
                let snapshots = if node.save.trim().is_empty() {
                    "and no RDB snapshots: a restart loses every session"
                } else {
                    "(RDB snapshots only: a crash loses the sessions since the last one)"
                };
                report.add(
                    name.clone(),
                    Status::Warn,
                    format!("persistence: AOF off {snapshots}; set `appendonly yes` and `appendfsync everysec`, or use session_store = \"tiered\""),
                );
            }
        }
        skew(
            report,
            &format!("{name} clock"),
            node.time_ms,
            settings.leeway,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_urls_are_never_printed() {
        assert_eq!(
            super::redacted("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://[redacted]@10.0.0.1:6379/0"
        );
        assert_eq!(
            super::redacted("rediss://user:pw@a:1,rediss://user:pw@b:2"),
            "rediss://[redacted]@a:1,rediss://[redacted]@b:2"
        );
        assert_eq!(
            super::redacted("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
