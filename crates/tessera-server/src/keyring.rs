//! The keys in force — access-token signing keys and refresh MAC keys — where they live, and
//! how they rotate.
//!
//! **Where.** Without a master key, in the data directory (`keys.json`, 0600). With one
//! (`master_key`, `TESSERA_MASTER_KEY`), in the users database, as one row sealed with
//! XChaCha20-Poly1305 under the master key: every instance given the same database and master key
//! signs and verifies with the same keys, with no file copying, and the database alone reveals
//! nothing. A data directory's `keys.json` is carried into an empty shared ring once.
//!
//! **Rotation** (`tessera keys rotate`) adds a signing key and a refresh MAC key that take over
//! only `after` a delay (by default the JWKS `max-age`): the new public key is published at once,
//! so every verifier's cached JWKS holds it before the first token it signs; every instance reads
//! the ring again each second, so all of them hold the new refresh key before a session uses it.
//! A superseded signing key stays published until every token it signed has expired (access-token
//! lifetime plus leeway), a superseded refresh key until every session made with it has reached
//! its absolute expiry; then they leave the ring.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use tessera_core::keys::{
    KeySet, RefreshKey, RefreshKeys, SigningAlg, SigningKey, StoredSigningKey,
};
use tessera_core::Timestamp;
use tessera_store::UserStore;

use crate::config::Settings;
use crate::datadir::DataDir;

/// The key ring as stored: every key not yet retired.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Access-token signing keys.
    pub signing: Vec<StoredSigningKey>,
    /// Refresh MAC keys.
    pub refresh: Vec<RefreshKey>,
}

/// The keys in force at one moment.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Signing keys: the current one signs, all verify.
    pub signing: KeySet,
    /// Refresh MAC keys: the current one for new sessions, all check tags.
    pub refresh: RefreshKeys,
    /// The JWKS document of `signing`, rendered once.
    pub jwks: String,
    /// When the choice of keys changes next without the ring changing (a pending key starts,
    /// or a superseded one retires).
    next_change: Option<Timestamp>,
}

/// How long a superseded key stays.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Signing keys: the longest an access token lives, plus the leeway.
    pub access: Duration,
    /// Refresh keys: the longest a session lives.
    pub refresh: Duration,
}

impl Keep {
    /// From the settings, with a margin for instances that read the ring a little late (they
    /// may use a superseded key for up to one reading interval after its successor took over).
    pub fn of(settings: &Settings) -> Self {
        let margin = 2 * crate::app::KEY_INTERVAL + Duration::from_secs(1);
        Self {
            access: settings.access_ttl + settings.leeway + margin,
            refresh: settings.refresh_max_age + settings.leeway + margin,
        }
    }
}

fn signs_from(k: &StoredSigningKey) -> i64 {
    k.signs_from.unwrap_or(k.created_at)
}

fn use_from(k: &RefreshKey) -> i64 {
    k.use_from.unwrap_or(k.created_at)
}

/// When a key whose successor took over at `successor_from` may go: `None` if it has none.
fn retires_at(own_from: i64, successors: impl Iterator<Item = i64>, keep: Duration) -> Option<i64> {
    let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    successors
        .filter(|&from| from > own_from)
        .min()
        .map(|from| from.saturating_add(keep))
}

/// The keys in force at `now` (pure: the rules of the module docs).
pub fn build(file: &KeyFile, alg: SigningAlg, now: Timestamp, keep: Keep) -> anyhow::Result<Keys> {
    let now_ms = now.as_millis();
    let mut changes: Vec<i64> = Vec::new();

    // The signer: the configured algorithm's key that took over last.
    let signer = file
        .signing
        .iter()
        .filter(|k| k.alg == alg && signs_from(k) <= now_ms)
        .max_by_key(|k| signs_from(k))
        .or_else(|| {
            // Only pending keys of this algorithm (a first key made with a delay): the earliest.
            file.signing
                .iter()
                .filter(|k| k.alg == alg)
                .min_by_key(|k| signs_from(k))
        })
        .with_context(|| format!("the key ring holds no {alg} signing key"))?;
    let successors = || file.signing.iter().filter(|k| k.alg == alg).map(signs_from);
    let mut signing = Vec::new();
    for stored in &file.signing {
        changes.push(signs_from(stored));
        let retires = retires_at(signs_from(stored), successors(), keep.access);
        if let Some(at) = retires {
            changes.push(at);
        }
        if stored.kid != signer.kid && retires.is_some_and(|at| at <= now_ms) {
            continue;
        }
        signing.push(SigningKey::from_stored(stored).context("while loading a signing key")?);
    }
    let signing = KeySet::with_current(signing, &signer.kid).context("no signing key")?;

    let current = file
        .refresh
        .iter()
        .filter(|k| use_from(k) <= now_ms)
        .max_by_key(|k| use_from(k))
        .or_else(|| file.refresh.iter().min_by_key(|k| use_from(k)))
        .context("the key ring holds no refresh key")?;
    let mut refresh = Vec::new();
    for key in &file.refresh {
        changes.push(use_from(key));
        let retires = retires_at(
            use_from(key),
            file.refresh.iter().map(use_from),
            keep.refresh,
        );
        if let Some(at) = retires {
            changes.push(at);
        }
        if key.kid != current.kid && retires.is_some_and(|at| at <= now_ms) {
            continue;
        }
        refresh.push(key.clone());
    }
    let refresh = RefreshKeys::with_current(refresh, &current.kid).context("no refresh key")?;
    let next_change = changes
        .into_iter()
        .filter(|&t| t > now_ms)
        .min()
        .map(Timestamp::from_millis);
    Ok(Keys {
        jwks: signing.jwks().to_string(),
        signing,
        refresh,
        next_change,
    })
}

/// The master key: 32 bytes, given base64-encoded.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// What sealed rings start with: format 1.
const SEALED_V1: &[u8] = b"tk1";
/// Binds a sealed blob to its purpose.
const AAD: &[u8] = b"tessera key ring v1";

impl MasterKey {
    /// Parses base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .context(
                "master_key must be 32 random bytes in base64; generate one with \
                 `openssl rand -base64 32`",
            )?;
        Ok(Self(bytes))
    }

    /// Encrypts and authenticates `plain`.
    fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: AAD,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length a key ring has");
        [SEALED_V1, &nonce, &sealed].concat()
    }

    /// Checks and decrypts what [`seal`](Self::seal) made.
    fn open(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rest = sealed
            .strip_prefix(SEALED_V1)
            .filter(|r| r.len() > 24)
            .context("the stored key ring is not in a format this version knows")?;
        let (nonce, body) = rest.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().expect("split at 24");
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: AAD,
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the master key does not open the stored key ring: every instance must be \
                     given the same master_key"
                )
            })
    }
}

/// Where the ring lives.
#[derive(Debug, Clone)]
pub enum Source {
    /// `keys.json` in the data directory.
    File {
        /// Its path.
        path: PathBuf,
        /// Whether this process may create keys there (it holds the directory's lock).
        may_create: bool,
    },
    /// The users database, sealed under the master key.
    Store {
        /// The database.
        users: Arc<dyn UserStore>,
        /// The master key.
        master: MasterKey,
    },
}

/// What identifies one state of the stored ring, to notice changes cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    File(Option<SystemTime>, u64),
    Store(i64),
}

impl Source {
    /// The source the settings ask for.
    pub fn of(
        settings: &Settings,
        data_dir: &DataDir,
        users: Arc<dyn UserStore>,
    ) -> anyhow::Result<Self> {
        Ok(match settings.master_key_text()? {
            Some(text) => {
                use secrecy::ExposeSecret as _;
                Source::Store {
                    users,
                    master: MasterKey::parse(text.expose_secret())?,
                }
            }
            None => Source::File {
                path: data_dir.key_file(),
                may_create: data_dir.is_locked(),
            },
        })
    }

    async fn read(&self) -> anyhow::Result<Option<(KeyFile, Stamp)>> {
        self.read_changed(None).await
    }

    /// The ring and its stamp, unless its stamp is still `known` (or there is no ring): one
    /// `stat` of the file, or one read of the row, when nothing changed.
    async fn read_changed(
        &self,
        known: Option<&Stamp>,
    ) -> anyhow::Result<Option<(KeyFile, Stamp)>> {
        match self {
            Source::File { path, .. } => {
                let Some(stamp) = file_stamp(path)? else {
                    return Ok(None);
                };
                if known == Some(&stamp) {
                    return Ok(None);
                }
                crate::datadir::check_permissions(path)?;
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("while reading {}", path.display()))?;
                let file = serde_json::from_str(&text)
                    .with_context(|| format!("while parsing {}", path.display()))?;
                Ok(Some((file, stamp)))
            }
            Source::Store { users, master } => {
                let Some((version, sealed)) = users.keyring().await? else {
                    return Ok(None);
                };
                if known == Some(&Stamp::Store(version)) {
                    return Ok(None);
                }
                let plain = master.open(&sealed)?;
                let file = serde_json::from_slice(&plain).context("while parsing the key ring")?;
                Ok(Some((file, Stamp::Store(version))))
            }
        }
    }

    /// Writes `file` if the ring is still at `expected`. `false`: another writer came first.
    async fn write(&self, file: &KeyFile, expected: Option<&Stamp>) -> anyhow::Result<bool> {
        let json = serde_json::to_vec_pretty(file)?;
        match self {
            Source::File { path, .. } => {
                crate::datadir::write_private(path, &json)?;
                Ok(true)
            }
            Source::Store { users, master } => {
                let version = match expected {
                    Some(Stamp::Store(v)) => *v,
                    _ => 0,
                };
                Ok(users.swap_keyring(version, &master.seal(&json)).await?)
            }
        }
    }

    /// Reads the ring, lets `change` edit it, and writes it back if it changed, again from the
    /// top if another writer came first. Returns the ring as it is afterwards.
    async fn update(
        &self,
        mut change: impl FnMut(&mut KeyFile) -> anyhow::Result<bool>,
    ) -> anyhow::Result<(KeyFile, Option<Stamp>)> {
        for _ in 0..16 {
            let (mut file, stamp) = match self.read().await? {
                Some((file, stamp)) => (file, Some(stamp)),
                None => (KeyFile::default(), None),
            };
            if !change(&mut file)? {
                return Ok((file, stamp));
            }
            if self.write(&file, stamp.as_ref()).await? {
                // The version this write made, not a fresh read: another writer may already
                // have come after it, and reading now would take its version for this file's.
                let stamp = match (self, &stamp) {
                    (Source::Store { .. }, Some(Stamp::Store(v))) => Some(Stamp::Store(v + 1)),
                    (Source::Store { .. }, _) => Some(Stamp::Store(1)),
                    (Source::File { path, .. }, _) => file_stamp(path)?,
                };
                return Ok((file, stamp));
            }
        }
        bail!("the key ring kept changing under this writer; try again")
    }
}

/// What identifies the state of a key file: modification time and length. `None`: no file.
fn file_stamp(path: &std::path::Path) -> anyhow::Result<Option<Stamp>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(Stamp::File(meta.modified().ok(), meta.len()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("while reading {}", path.display())),
    }
}

/// The ring of a running server: the keys in force now, kept current.
#[derive(Debug)]
pub struct KeyRing {
    source: Source,
    alg: SigningAlg,
    keep: Keep,
    stored: Mutex<(KeyFile, Option<Stamp>)>,
    current: RwLock<Arc<Keys>>,
}

impl KeyRing {
    /// Opens the ring, creating what is missing (a signing key for `alg`, a refresh key), and,
    /// for a shared ring that does not exist yet, carrying over the data directory's keys.
    pub async fn open(
        source: Source,
        data_dir: &DataDir,
        alg: SigningAlg,
        keep: Keep,
        now: Timestamp,
    ) -> anyhow::Result<Self> {
        let seed = match &source {
            // The data directory's keys.json, carried into a shared ring that is still empty.
            Source::Store { .. } => Source::File {
                path: data_dir.key_file(),
                may_create: false,
            }
            .read()
            .await?
            .map(|(file, _)| file),
            Source::File { .. } => None,
        };
        let may_create = !matches!(
            source,
            Source::File {
                may_create: false,
                ..
            }
        );
        let (file, stamp) = source
            .update(|file| {
                let mut changed = false;
                if file.signing.is_empty() && file.refresh.is_empty() {
                    if let Some(seed) = &seed {
                        *file = seed.clone();
                        changed = true;
                    }
                }
                if !file.signing.iter().any(|k| k.alg == alg) {
                    let key = SigningKey::generate(alg, now)?;
                    file.signing.push(key.to_stored()?);
                    changed = true;
                }
                if file.refresh.is_empty() {
                    file.refresh.push(RefreshKey::generate(now));
                    changed = true;
                }
                if changed && !may_create {
                    bail!(
                        "the data directory lacks keys and a server holds it; start the server \
                         first"
                    );
                }
                Ok(changed)
            })
            .await?;
        let keys = build(&file, alg, now, keep)?;
        Ok(Self {
            source,
            alg,
            keep,
            stored: Mutex::new((file, stamp)),
            current: RwLock::new(Arc::new(keys)),
        })
    }

    /// The keys in force.
    pub fn keys(&self) -> Arc<Keys> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the ring again if it changed, and moves on to the keys in force at `now`.
    /// Returns whether the keys changed.
    pub async fn refresh(&self, now: Timestamp) -> anyhow::Result<bool> {
        let known = self
            .stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone();
        if let Some((file, stamp)) = self.source.read_changed(known.as_ref()).await? {
            let keys = build(&file, self.alg, now, self.keep)?;
            *self.stored.lock().unwrap_or_else(PoisonError::into_inner) = (file, Some(stamp));
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
            return Ok(true);
        }
        let due = self.keys().next_change.is_some_and(|t| t <= now);
        if due {
            let file = self
                .stored
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                .clone();
            let keys = build(&file, self.alg, now, self.keep)?;
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
            return Ok(true);
        }
        Ok(false)
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    /// The new signing key.
    pub signing_kid: String,
    /// The new refresh MAC key.
    pub refresh_kid: String,
    /// When both take over (RFC 3339).
    pub takes_over_at: String,
    /// Keys removed because they had retired.
    pub removed: Vec<String>,
}

/// Adds a signing key (for `alg`) and a refresh MAC key that take over `after` from `now`,
/// and removes keys that have retired.
pub async fn rotate(
    source: &Source,
    alg: SigningAlg,
    keep: Keep,
    after: Duration,
    now: Timestamp,
) -> anyhow::Result<Rotation> {
    let from = now.plus(after).as_millis();
    let mut signing = SigningKey::generate(alg, now)?.to_stored()?;
    signing.signs_from = Some(from);
    let mut refresh = RefreshKey::generate(now);
    refresh.use_from = Some(from);
    let mut removed = Vec::new();
    source
        .update(|file| {
            removed.clear();
            // Retired keys go: those `build` no longer puts in force.
            if !file.signing.is_empty() && !file.refresh.is_empty() {
                let keys = build(file, alg, now, keep)?;
                file.signing.retain(|k| {
                    let keep = keys.signing.get(&k.kid).is_some();
                    if !keep {
                        removed.push(k.kid.clone());
                    }
                    keep
                });
                file.refresh.retain(|k| {
                    let keep = keys.refresh.get(&k.kid).is_some();
                    if !keep {
                        removed.push(k.kid.clone());
                    }
                    keep
                });
            }
            file.signing.push(signing.clone());
            file.refresh.push(refresh.clone());
            Ok(true)
        })
        .await?;
    Ok(Rotation {
        signing_kid: signing.kid,
        refresh_kid: refresh.kid,
        takes_over_at: crate::routes::rfc3339(Timestamp::from_millis(from)),
        removed,
    })
}

/// Removes the key `kid` (signing or refresh) from the ring at once: for a leaked key. Its
/// tokens (or sessions) stop verifying within a second on every instance. Refused for the last
/// signing key of `alg` and the last refresh key.
pub async fn remove(source: &Source, alg: SigningAlg, kid: &str) -> anyhow::Result<()> {
    source
        .update(|file| {
            let (signing, refresh) = (file.signing.len(), file.refresh.len());
            file.signing.retain(|k| k.kid != kid);
            file.refresh.retain(|k| k.kid != kid);
            if file.signing.len() == signing && file.refresh.len() == refresh {
                bail!("no key {kid:?} in the ring (see `tessera keys list`)");
            }
            if !file.signing.iter().any(|k| k.alg == alg) || file.refresh.is_empty() {
                bail!(
                    "{kid:?} is the last key of its kind: rotate first (`tessera keys rotate \
                     --after 0s`), then remove it"
                );
            }
            Ok(true)
        })
        .await
        .map(drop)
}

/// The ring the settings name, opened by an admin command (beside running servers).
struct Configured {
    data_dir: DataDir,
    database: crate::stores::SqlDatabase,
    source: Source,
}

impl Configured {
    async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let data_dir = DataDir::open(&settings.data_dir, crate::datadir::Access::Shared)?;
        let database = crate::stores::SqlDatabase::open(settings, &data_dir, false).await?;
        let source = Source::of(settings, &data_dir, database.users())?;
        Ok(Self {
            data_dir,
            database,
            source,
        })
    }
}

/// `tessera keys remove`: opens the configured ring and removes `kid` from it.
pub async fn remove_configured(settings: &Settings, kid: &str) -> anyhow::Result<()> {
    let Configured {
        data_dir: _data_dir, // held to the end: its lock
        database,
        source,
    } = Configured::open(settings).await?;
    let result = remove(&source, settings.signing_alg, kid).await;
    database.close().await;
    result
}

/// `tessera keys rotate`: opens the configured ring and rotates it. `after` defaults to the
/// JWKS `max-age` plus two reads of the ring, so every cached JWKS holds the new key before it
/// signs.
pub async fn rotate_configured(
    settings: &Settings,
    after: Option<Duration>,
    now: Timestamp,
) -> anyhow::Result<Rotation> {
    let Configured {
        data_dir,
        database,
        source,
    } = Configured::open(settings).await?;
    let after = after.unwrap_or(settings.jwks_max_age + 2 * crate::app::KEY_INTERVAL);
    let keep = Keep::of(settings);
    // The ring a server would open first (a shared ring takes over keys.json), then the rotation.
    let result =
        match KeyRing::open(source.clone(), &data_dir, settings.signing_alg, keep, now).await {
            Ok(_) => rotate(&source, settings.signing_alg, keep, after, now).await,
            Err(e) => Err(e),
        };
    database.close().await;
    result
}

/// For `tessera doctor`: whether the shared ring in `users` opens with `master`; its version
/// and numbers of signing and refresh keys, or `None` when there is no ring yet.
pub async fn inspect_shared(
    users: &dyn UserStore,
    master: &str,
) -> anyhow::Result<Option<(i64, usize, usize)>> {
    let master = MasterKey::parse(master)?;
    let Some((version, sealed)) = users.keyring().await? else {
        return Ok(None);
    };
    let file: KeyFile =
        serde_json::from_slice(&master.open(&sealed)?).context("while parsing the key ring")?;
    Ok(Some((version, file.signing.len(), file.refresh.len())))
}

/// One line per key of the configured ring, for `tessera keys list`.
pub async fn describe_configured(
    settings: &Settings,
    now: Timestamp,
) -> anyhow::Result<Vec<String>> {
    let Configured {
        data_dir: _data_dir, // held to the end: its lock
        database,
        source,
    } = Configured::open(settings).await?;
    let read = source.read().await;
    database.close().await;
    let Some((file, _)) = read? else {
        return Ok(vec![
            "no keys yet: the server makes them at its first start".into(),
        ]);
    };
    let keys = build(&file, settings.signing_alg, now, Keep::of(settings))?;
    let state = |in_force: bool, current: bool, from: i64| match (in_force, current) {
        (_, true) => "current".to_owned(),
        (false, _) => "retired".to_owned(),
        (true, false) if from > now.as_millis() => {
            format!(
                "takes over at {}",
                crate::routes::rfc3339(Timestamp::from_millis(from))
            )
        }
        (true, false) => "verifying only".to_owned(),
    };
    let mut lines = Vec::new();
    for k in &file.signing {
        let in_force = keys.signing.get(&k.kid).is_some();
        let current = keys.signing.current().kid() == k.kid;
        lines.push(format!(
            "signing  {}  {:<5}  {}",
            k.kid,
            k.alg.as_str(),
            state(in_force, current, signs_from(k))
        ));
    }
    for k in &file.refresh {
        let in_force = keys.refresh.get(&k.kid).is_some();
        let current = keys.refresh.current().kid == k.kid;
        lines.push(format!(
            "refresh  {}  HMAC   {}",
            k.kid,
            state(in_force, current, use_from(k))
        ));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Keep = Keep {
        access: Duration::from_secs(300),
        refresh: Duration::from_secs(86_400),
    };

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn ring_at(secs: i64) -> KeyFile {
        let mut signing = SigningKey::generate(SigningAlg::EdDSA, t(secs))
            .expect("key")
            .to_stored()
            .expect("stored");
        signing.signs_from = None;
        KeyFile {
            signing: vec![signing],
            refresh: vec![RefreshKey::generate(t(secs))],
        }
    }

    fn add_rotation(file: &mut KeyFile, made: i64, from: i64) -> (String, String) {
        let mut s = SigningKey::generate(SigningAlg::EdDSA, t(made))
            .expect("key")
            .to_stored()
            .expect("stored");
        s.signs_from = Some(from * 1000);
        let mut r = RefreshKey::generate(t(made));
        r.use_from = Some(from * 1000);
        let kids = (s.kid.clone(), r.kid.clone());
        file.signing.push(s);
        file.refresh.push(r);
        kids
    }

    #[test]
    fn a_rotated_key_is_published_first_signs_later_and_the_old_one_retires_after_its_tokens() {
        let mut file = ring_at(0);
        let old = file.signing[0].kid.clone();
        let old_refresh = file.refresh[0].kid.clone();
        let (new, new_refresh) = add_rotation(&mut file, 1000, 1300);

        // Published, not signing yet.
        let keys = build(&file, SigningAlg::EdDSA, t(1000), KEEP).expect("build");
        assert_eq!(keys.signing.current().kid(), old);
        assert!(
            keys.jwks.contains(&new),
            "the new key is in the JWKS before it signs"
        );
        assert_eq!(keys.refresh.current().kid, old_refresh);
        assert_eq!(keys.next_change, Some(t(1300)));

        // Signing; the old key still verifies its tokens.
        let keys = build(&file, SigningAlg::EdDSA, t(1300), KEEP).expect("build");
        assert_eq!(keys.signing.current().kid(), new);
        assert!(keys.signing.get(&old).is_some());
        assert_eq!(keys.refresh.current().kid, new_refresh);
        assert!(keys.refresh.get(&old_refresh).is_some());
        assert_eq!(keys.next_change, Some(t(1600)));

        // Every token of the old key has expired: it leaves the JWKS.
        let keys = build(&file, SigningAlg::EdDSA, t(1600), KEEP).expect("build");
        assert!(keys.signing.get(&old).is_none());
        assert!(!keys.jwks.contains(&old));
        assert!(
            keys.refresh.get(&old_refresh).is_some(),
            "sessions live longer"
        );

        let keys = build(&file, SigningAlg::EdDSA, t(1300 + 86_400), KEEP).expect("build");
        assert!(keys.refresh.get(&old_refresh).is_none());
        assert_eq!(keys.next_change, None);
    }

    #[test]
    fn another_algorithm_keeps_its_keys_verifying_and_a_missing_one_is_an_error() {
        let file = ring_at(0);
        assert!(build(&file, SigningAlg::ES256, t(10), KEEP).is_err());
        let mut both = file.clone();
        both.signing.push(
            SigningKey::generate(SigningAlg::ES256, t(5))
                .expect("key")
                .to_stored()
                .expect("stored"),
        );
        let keys = build(&both, SigningAlg::ES256, t(10), KEEP).expect("build");
        assert_eq!(keys.signing.current().alg(), SigningAlg::ES256);
        assert!(keys.signing.get(&file.signing[0].kid).is_some());
    }

    #[test]
    fn a_sealed_ring_opens_only_with_its_master_key_and_untouched() {
        let key = MasterKey::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
            .expect("key");
        let sealed = key.seal(b"the ring");
        assert_eq!(key.open(&sealed).expect("opens"), b"the ring");
        assert_ne!(key.seal(b"the ring"), sealed, "a fresh nonce each time");
        let other = MasterKey([8u8; 32]);
        assert!(other.open(&sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().expect("byte") ^= 1;
        assert!(key.open(&flipped).is_err());
        assert!(key
            .open(b"tk2whatever-and-more-bytes-here-to-be-long")
            .is_err());
        assert!(MasterKey::parse("too short").is_err());
        assert!(
            MasterKey::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 31])).is_err()
        );
        assert!(MasterKey::parse(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([255u8; 32])
        )
        .is_ok());
    }
}
