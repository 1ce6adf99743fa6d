//! `tessera backup` and `tessera restore` for the embedded SQLite store: a consistent online
//! copy of the database (`VACUUM INTO`) together with the key file, and putting such a copy back.
//!
//! A backup is a directory holding `tessera.db` and `keys.json` (both 0600; the directory 0700).
//! The keys belong with the database: without them no issued token verifies and no refresh token
//! matches its session. PostgreSQL and MySQL have their own tools (`pg_dump`, `mysqldump`).

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use tessera_store::sqlite::SqliteStore;

use crate::config::{Database, Settings};
use crate::datadir::{Access, DataDir};
use crate::stores::SqlDatabase;

/// What a backup or restore did.
#[derive(Debug)]
pub struct Summary {
    /// Sessions in the copied database.
    pub sessions: i64,
    /// Bytes of the copied database.
    pub bytes: u64,
    /// Where the replaced files went (restore only).
    pub set_aside: Option<PathBuf>,
}

fn embedded_only(settings: &Settings) -> anyhow::Result<()> {
    match settings.database() {
        Database::EmbeddedSqlite => Ok(()),
        Database::Sqlite(_) => bail!(
            "backup and restore work on the embedded database in the data directory; for a \
             database_url of your own, copy it with `sqlite3 <file> \"vacuum into '<copy>'\"`"
        ),
        _ => bail!(
            "backup and restore are for the embedded SQLite store; back up PostgreSQL with \
             pg_dump and MySQL with mysqldump (and keep keys.json with it)"
        ),
    }
}

fn private_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("while copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("while making {} private", to.display()))?;
    Ok(())
}

/// Writes a backup into `dest` (created, 0700; it must not hold a backup already). Safe while a
/// server runs on the data directory: writes wait for the moment of the copy.
pub async fn backup(settings: &Settings, dest: &Path) -> anyhow::Result<Summary> {
    embedded_only(settings)?;
    let data_dir = DataDir::open(&settings.data_dir, Access::Shared)?;
    let keys = data_dir.path().join("keys.json");
    if settings.master_key.is_some() || settings.master_key_file.is_some() {
        bail!(
            "with master_key the keys live in the database: back up the database (VACUUM INTO, \
             or copy it with the server stopped) and keep the master key apart from it"
        );
    }
    if !keys.exists() {
        bail!(
            "{} has no keys.json: nothing to back up yet",
            data_dir.path().display()
        );
    }
    let db_copy = dest.join("tessera.db");
    if db_copy.exists() {
        bail!(
            "{} already holds a backup; give an empty or new directory",
            dest.display()
        );
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dest)
        .with_context(|| format!("while creating {}", dest.display()))?;
    // The copy holds password hashes: a directory others can enter would show it.
    let mode = fs::metadata(dest)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is open to other users (mode {:o}); run `chmod 700 {}` or give another directory",
            dest.display(),
            mode & 0o777,
            dest.display()
        );
    }
    // Created empty with mode 0600 first, so the copy is never readable by others, even while
    // it is written (`VACUUM INTO` fills an empty file).
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&db_copy)
        .with_context(|| format!("while creating {}", db_copy.display()))?;
    let result = async {
        let SqlDatabase::Sqlite(db) = SqlDatabase::open(settings, &data_dir, false).await? else {
            bail!("the embedded database is not SQLite");
        };
        let copied = db.backup_to(&db_copy).await;
        db.close().await;
        copied.context("while copying the database")?;
        private_copy(&keys, &dest.join("keys.json"))
    }
    .await;
    if let Err(e) = result {
        // Leave nothing half-written that would block the next attempt.
        let _ = fs::remove_file(&db_copy);
        let _ = fs::remove_file(dest.join("keys.json"));
        return Err(e);
    }
    let sessions = SqliteStore::check_file(&db_copy)
        .await
        .context("while checking the copy")?;
    Ok(Summary {
        sessions,
        bytes: fs::metadata(&db_copy)?.len(),
        set_aside: None,
    })
}

/// Puts the backup in `src` back into the data directory. The server must be stopped (the data
/// directory's lock is taken); the files it replaces are moved to a `before-restore-<time>`
/// directory inside the data directory, never deleted.
pub async fn restore(settings: &Settings, src: &Path) -> anyhow::Result<Summary> {
    embedded_only(settings)?;
    let (db_copy, keys_copy) = (src.join("tessera.db"), src.join("keys.json"));
    for file in [&db_copy, &keys_copy] {
        if !file.exists() {
            bail!(
                "{} is not a backup: {} is missing",
                src.display(),
                file.display()
            );
        }
    }
    let sessions = SqliteStore::check_file(&db_copy)
        .await
        .with_context(|| format!("{} is not a usable backup", db_copy.display()))?;
    let data_dir = DataDir::open(&settings.data_dir, Access::Exclusive)
        .context("stop the server before restoring")?;
    let dir = data_dir.path();
    if fs::canonicalize(src)? == fs::canonicalize(dir)? {
        bail!(
            "{} is the data directory itself, not a backup",
            src.display()
        );
    }
    // Staged beside the live files first (copied and synced), so a failure before the switch
    // leaves the data directory as it was.
    let staged = [
        (
            db_copy.clone(),
            dir.join("tessera.db.restoring"),
            dir.join("tessera.db"),
        ),
        (
            keys_copy.clone(),
            dir.join("keys.json.restoring"),
            dir.join("keys.json"),
        ),
    ];
    for (from, temp, _) in &staged {
        let _ = fs::remove_file(temp);
        private_copy(from, temp)?;
        fs::File::open(temp)?.sync_all()?;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = dir.join(format!("before-restore-{stamp}"));
    DirBuilder::new().mode(0o700).create(&aside)?;
    let mut moved = Vec::new();
    let mut switch = || -> anyhow::Result<()> {
        for name in [
            "tessera.db",
            "tessera.db-wal",
            "tessera.db-shm",
            "keys.json",
        ] {
            let current = dir.join(name);
            if current.exists() {
                fs::rename(&current, aside.join(name))
                    .with_context(|| format!("while moving {} aside", current.display()))?;
                moved.push(name);
            }
        }
        for (_, temp, live) in &staged {
            fs::rename(temp, live)
                .with_context(|| format!("while putting {} in place", live.display()))?;
        }
        Ok(())
    };
    if let Err(e) = switch() {
        // Put back what was moved; the staged copies stay for a look.
        for name in &moved {
            let _ = fs::rename(aside.join(name), dir.join(name));
        }
        return Err(e);
    }
    let set_aside = if moved.is_empty() {
        let _ = fs::remove_dir(&aside);
        None
    } else {
        Some(aside)
    };
    Ok(Summary {
        sessions,
        bytes: fs::metadata(dir.join("tessera.db"))?.len(),
        set_aside,
    })
}
