//! The data directory of the embedded mode: database, keys, and the lock that keeps a second
//! server off the same files.
//!
//! ```text
//! tessera-data/          0700
//! ├── tessera.lock       held (flock) by the serving process
//! ├── keys.json          0600: signing keys and refresh MAC keys
//! └── tessera.db         SQLite (WAL: also tessera.db-wal, tessera.db-shm)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// How a process uses the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The server: takes the lock, refuses to start if another process holds it.
    Exclusive,
    /// An admin command: takes the lock if free; if a server holds it, works beside it
    /// (SQLite serialises the writes) and never creates keys.
    Shared,
}

/// An open data directory.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    lock: Option<File>,
}

impl DataDir {
    /// Opens (creating with mode 0700 if needed) the data directory at `path`.
    pub fn open(path: &Path, access: Access) -> anyhow::Result<Self> {
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .with_context(|| format!("while creating the data directory {}", path.display()))?;
        }
        let lock_path = path.join("tessera.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("while opening the lock file {}", lock_path.display()))?;
        let lock = match file.try_lock() {
            Ok(()) => Some(file),
            Err(fs::TryLockError::WouldBlock) if access == Access::Shared => None,
            Err(fs::TryLockError::WouldBlock) => bail!(
                "another Tessera process is already serving from {} (it holds {}); stop it, or give \
                 this one another data directory with --data-dir / TESSERA_DATA_DIR",
                path.display(),
                lock_path.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("while locking {}", lock_path.display()))
            }
        };
        Ok(Self {
            path: path.to_owned(),
            lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The embedded database file, created empty with mode 0600 if missing (it holds password
    /// hashes; SQLite gives its `-wal` and `-shm` files the same mode).
    pub fn database(&self) -> anyhow::Result<PathBuf> {
        let path = self.path.join("tessera.db");
        if !path.exists() {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("while creating {}", path.display()))?;
        }
        Ok(path)
    }

    /// Whether this process holds the lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The key file (`keys.json`) of this directory.
    pub fn key_file(&self) -> PathBuf {
        self.path.join("keys.json")
    }
}

/// The key file of the data directory at `dir`, read without creating or locking anything (for
/// `tessera doctor`): `Ok(None)` when there is none yet, else the numbers of signing and refresh
/// keys. A key file others can read, or that does not parse, is an error saying what to do.
pub fn inspect_keys(dir: &Path) -> anyhow::Result<Option<(usize, usize)>> {
    let path = dir.join("keys.json");
    if !path.exists() {
        return Ok(None);
    }
    check_permissions(&path)?;
    let text =
        fs::read_to_string(&path).with_context(|| format!("while reading {}", path.display()))?;
    let file = serde_json::from_str::<crate::keyring::KeyFile>(&text)
        .with_context(|| format!("while parsing {}", path.display()))?;
    Ok(Some((file.signing.len(), file.refresh.len())))
}

/// Refuses a key file that others can read: the keys would no longer be secret.
pub(crate) fn check_permissions(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("while creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("while writing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{Keep, KeyRing, Source};
    use std::time::Duration;
    use tessera_core::keys::SigningAlg;
    use tessera_core::Timestamp;

    const KEEP: Keep = Keep {
        access: Duration::from_secs(300),
        refresh: Duration::from_secs(86_400),
    };

    async fn ring(dir: &DataDir, alg: SigningAlg, secs: i64) -> anyhow::Result<KeyRing> {
        let source = Source::File {
            path: dir.key_file(),
            may_create: dir.is_locked(),
        };
        KeyRing::open(source, dir, alg, KEEP, Timestamp::from_secs(secs)).await
    }

    #[tokio::test]
    async fn keys_are_created_once_with_private_permissions() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::open(&tmp.path().join("data"), Access::Exclusive).expect("open");
        let keys = ring(&dir, SigningAlg::EdDSA, 1)
            .await
            .expect("create")
            .keys();
        let again = ring(&dir, SigningAlg::EdDSA, 1).await.expect("load").keys();
        assert_eq!(keys.signing.current().kid(), again.signing.current().kid());
        assert_eq!(keys.refresh.current().kid, again.refresh.current().kid);
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("keys.json")), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
    }

    #[tokio::test]
    async fn changing_the_algorithm_adds_a_key_and_keeps_the_old_one() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::open(tmp.path(), Access::Exclusive).expect("open");
        let ed = ring(&dir, SigningAlg::EdDSA, 1).await.expect("ed").keys();
        let es = ring(&dir, SigningAlg::ES256, 2).await.expect("es").keys();
        assert_eq!(es.signing.current().alg(), SigningAlg::ES256);
        assert!(
            es.signing.get(ed.signing.current().kid()).is_some(),
            "old tokens still verify"
        );
    }

    #[tokio::test]
    async fn an_admin_command_beside_a_server_never_creates_keys() {
        let tmp = tempfile::tempdir().expect("tmp");
        let _server = DataDir::open(tmp.path(), Access::Exclusive).expect("server");
        let admin = DataDir::open(tmp.path(), Access::Shared).expect("admin command");
        let err = ring(&admin, SigningAlg::EdDSA, 1)
            .await
            .expect_err("refused")
            .to_string();
        assert!(err.contains("start the server first"), "{err}");
        assert!(!admin.key_file().exists());
    }

    #[test]
    fn a_second_server_is_refused_and_an_admin_command_is_not() {
        let tmp = tempfile::tempdir().expect("tmp");
        let first = DataDir::open(tmp.path(), Access::Exclusive).expect("first");
        let err = DataDir::open(tmp.path(), Access::Exclusive)
            .expect_err("second")
            .to_string();
        assert!(
            err.contains("another Tessera process is already serving"),
            "{err}"
        );
        let shared = DataDir::open(tmp.path(), Access::Shared).expect("admin command");
        assert!(!shared.is_locked());
        drop(first);
        assert!(
            DataDir::open(tmp.path(), Access::Exclusive).is_ok(),
            "the lock goes with the process"
        );
    }

    #[tokio::test]
    async fn a_world_readable_key_file_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::open(tmp.path(), Access::Exclusive).expect("open");
        ring(&dir, SigningAlg::EdDSA, 1).await.expect("create");
        let path = tmp.path().join("keys.json");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = ring(&dir, SigningAlg::EdDSA, 1)
            .await
            .expect_err("refused")
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
