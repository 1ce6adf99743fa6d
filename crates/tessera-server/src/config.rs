//! Configuration: defaults → `tessera.toml` → `TESSERA_*` environment variables → command-line
//! flags, later layers winning. Durations are human (`5m`, `10s`, `14d`). A bad value stops the
//! start with a message naming the key and its environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tessera_core::keys::SigningAlg;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    /// Human-readable.
    Text,
    /// JSON lines.
    Json,
}

/// What an acknowledged write to the embedded SQLite database survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// One fsync per commit: survives a power cut.
    #[default]
    Full,
    /// Survives a crash of the process, not of the machine; many times the write rate.
    Normal,
}

/// Where sessions and the revocation state live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    /// The SQL database (the embedded SQLite by default).
    #[default]
    Sql,
    /// Redis or Redis Cluster (`redis_url`); users stay in SQL.
    Redis,
    /// SQL is the source of truth; Redis holds a write-through copy of sessions, read
    /// cache-aside, and carries the revocation bus. Losing Redis logs nobody out.
    Tiered,
}

/// The database named by `database_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database<'a> {
    /// No URL: `tessera.db` in the data directory.
    EmbeddedSqlite,
    /// A `sqlite:` URL.
    Sqlite(&'a str),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(&'a str),
    /// A `mysql://` URL (MySQL or MariaDB).
    MySql(&'a str),
    /// Any other scheme.
    Unsupported(&'a str),
}

impl Database<'_> {
    /// Whether the database is SQLite (embedded or by URL).
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Database::EmbeddedSqlite | Database::Sqlite(_))
    }
}

/// Every setting of the service. See `tessera.example.toml` for each key's meaning and default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the embedded database, keys and lock file.
    pub data_dir: PathBuf,
    /// Database URL; default `sqlite://<data_dir>/tessera.db`.
    pub database_url: Option<String>,
    /// SQLite durability: `full` (survives a power cut) or `normal` (survives a process crash).
    pub sqlite_synchronous: SqliteSync,
    /// Connections to PostgreSQL or MySQL.
    pub database_max_connections: u32,
    /// Bound on every PostgreSQL / MySQL operation; slower counts as unavailable (503).
    #[serde(with = "humantime_serde")]
    pub database_timeout: Duration,
    /// Apply pending database migrations at start (otherwise `tessera migrate` does).
    pub auto_migrate: bool,
    /// Where sessions and revocations live: `sql`, `redis` or `tiered`.
    pub session_store: SessionStoreKind,
    /// Redis URL, or comma-separated cluster node URLs.
    pub redis_url: String,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Bound on every Redis command; slower counts as unavailable (503).
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Start even if Redis's `maxmemory-policy` can evict keys (warns instead of refusing).
    pub redis_accept_eviction: bool,
    /// For `rediss://`: a PEM file of the CA to trust instead of the system's roots.
    pub redis_ca_file: Option<PathBuf>,
    /// The `iss` of access tokens; default `http://<listen>`.
    pub issuer: Option<String>,
    /// The `aud` of access tokens.
    pub audience: String,
    /// The `client_id` of first-party sessions (RFC 9068 requires the claim).
    pub client_id: String,
    /// Access-token lifetime.
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// A session not refreshed for this long expires.
    #[serde(with = "humantime_serde")]
    pub refresh_idle_ttl: Duration,
    /// A session expires this long after login, however often it is refreshed.
    #[serde(with = "humantime_serde")]
    pub refresh_max_age: Duration,
    /// How long a rotated refresh token may be presented again for the same child (0–60 s).
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    /// Refreshes one session may make per minute (a token bucket); more answer 429. 0: no limit.
    pub refresh_rate_limit: u32,
    /// Tolerated clock skew for `exp`, `nbf`, `iat`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Algorithm of new signing keys.
    pub signing_alg: SigningAlg,
    /// The admin API key. Without one (and without a file), the admin API is off.
    #[serde(serialize_with = "redacted")]
    pub admin_api_key: Option<SecretString>,
    /// A file holding the admin API key.
    pub admin_api_key_file: Option<PathBuf>,
    /// The key verifiers (resource servers using `tessera-verify`) present to read the
    /// revocation feed. Without one (and without a file), only the admin key reads it.
    #[serde(serialize_with = "redacted")]
    pub verifier_key: Option<SecretString>,
    /// A file holding the verifier key.
    pub verifier_key_file: Option<PathBuf>,
    /// The key-encryption key of the shared key ring: 32 random bytes, base64. With one, the
    /// signing and refresh MAC keys live in the users database, sealed under it, so every
    /// instance given the same database and master key uses the same keys. Without one, they
    /// live in the data directory (`keys.json`).
    #[serde(serialize_with = "redacted")]
    pub master_key: Option<SecretString>,
    /// A file holding the master key.
    pub master_key_file: Option<PathBuf>,
    /// Failed logins one client address may make per hour (a bucket refilled evenly); beyond,
    /// its attempts wait (429) whatever the account. `0`: no limit per address.
    pub login_address_limit: u32,
    /// Proxies (load balancers) whose `X-Forwarded-For` names the client: the client address is
    /// the rightmost address in it that is not one of these. Empty: the peer's address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long verifiers may cache the JWKS (`Cache-Control: max-age`); also how long
    /// `tessera keys rotate` waits by default before a new key signs.
    #[serde(with = "humantime_serde")]
    pub jwks_max_age: Duration,
    /// Whether anyone may sign up with `POST /v1/users`.
    pub signup: bool,
    /// Live sessions per user; the oldest is revoked beyond this.
    pub max_sessions_per_user: u32,
    /// argon2id memory in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id parallelism.
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; default twice the number of CPUs.
    pub hash_concurrency: Option<usize>,
    /// Longest time a request may take before it is answered with 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`info`, `tessera=debug`, …); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Serve `/metrics` on this address instead of the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// On SIGTERM, keep serving this long with `/readyz` answering 503, so load balancers take
    /// the instance out before it stops accepting.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// OAuth 2.0 clients besides the first-party one (`client_id`), for `/oauth/*`.
    pub clients: Vec<ClientConfig>,
}

/// One registered OAuth 2.0 client (`tessera client create` prints the entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The `client_id`.
    pub id: String,
    /// SHA-256 of the client secret, 64 hex digits: a confidential client. Absent: a public
    /// client (a browser or mobile app, which cannot keep a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// Whether the client may call `/oauth/introspect` (confidential clients only).
    #[serde(default)]
    pub introspect: bool,
}

fn redacted<S: serde::Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./tessera-data"),
            database_url: None,
            sqlite_synchronous: SqliteSync::Full,
            database_max_connections: 16,
            database_timeout: Duration::from_secs(3),
            auto_migrate: true,
            session_store: SessionStoreKind::Sql,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "tessera:".into(),
            redis_timeout: Duration::from_millis(500),
            redis_accept_eviction: false,
            redis_ca_file: None,
            issuer: None,
            audience: "tessera".into(),
            client_id: "tessera".into(),
            access_ttl: Duration::from_secs(5 * 60),
            refresh_idle_ttl: Duration::from_secs(14 * 86_400),
            refresh_max_age: Duration::from_secs(30 * 86_400),
            refresh_grace: Duration::from_secs(5),
            refresh_rate_limit: 60,
            leeway: Duration::from_secs(30),
            signing_alg: SigningAlg::EdDSA,
            admin_api_key: None,
            admin_api_key_file: None,
            verifier_key: None,
            verifier_key_file: None,
            master_key: None,
            master_key_file: None,
            jwks_max_age: Duration::from_secs(300),
            login_address_limit: 100,
            trusted_proxies: Vec::new(),
            signup: true,
            max_sessions_per_user: 100,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: None,
            request_timeout: Duration::from_secs(10),
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            metrics_listen: None,
            shutdown_delay: Duration::ZERO,
            clients: Vec::new(),
        }
    }
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read or parsed (figment names the key and where it came from).
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value parsed but is out of range.
    #[error("invalid configuration: `{key}` (env TESSERA_{env}): {problem}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Its environment variable, without the prefix.
        env: String,
        /// What is wrong.
        problem: String,
    },
}

/// One figment error as "`key` (env TESSERA_KEY): problem, in source".
fn describe(e: figment::Error) -> String {
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    match e.path.last() {
        Some(key) => format!(
            "`{key}` (env TESSERA_{}): {}{source}",
            key.to_uppercase(),
            e.kind
        ),
        None => format!("{}{source}", e.kind),
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        env: key.to_uppercase(),
        problem: problem.into(),
    }
}

impl Settings {
    /// The keys every layer may set (the field names).
    pub fn keys() -> Vec<String> {
        match figment::value::Value::serialize(Settings::default()) {
            Ok(figment::value::Value::Dict(_, dict)) => dict.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Loads the layers: defaults, the TOML file (if `file` is given or `tessera.toml` exists in
    /// the working directory), the environment, then `overrides` (command-line flags).
    pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Parse(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new("tessera.toml").exists() => {
                figment = figment.merge(Toml::file_exact("tessera.toml"))
            }
            None => {}
        }
        let known = Self::keys();
        figment = figment
            .merge(
                Env::prefixed("TESSERA_")
                    .filter(move |k| known.iter().any(|known| k == known.as_str())),
            )
            .merge(overrides);
        let settings: Settings = figment.extract().map_err(|e| {
            let problems: Vec<String> = e.into_iter().map(describe).collect();
            ConfigError::Parse(problems.join("; "))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Environment variables that start with `TESSERA_` but name no setting (typos).
    pub fn unknown_env_vars() -> Vec<String> {
        let known = Self::keys();
        std::env::vars()
            .map(|(k, _)| k)
            .filter_map(|k| {
                k.strip_prefix("TESSERA_")
                    .map(|rest| (k.clone(), rest.to_lowercase()))
            })
            .filter(|(_, key)| key != "config" && !key.starts_with("test_") && !known.contains(key))
            .map(|(k, _)| k)
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.access_ttl < Duration::from_secs(10)
            || self.access_ttl > Duration::from_secs(86_400)
        {
            return Err(invalid(
                "access_ttl",
                "must be between 10s and 24h (5m is recommended)",
            ));
        }
        if self.refresh_grace > Duration::from_secs(60) {
            return Err(invalid("refresh_grace", "must be between 0s and 60s"));
        }
        if self.refresh_idle_ttl.is_zero() {
            return Err(invalid("refresh_idle_ttl", "must be more than 0s"));
        }
        if self.refresh_max_age < self.refresh_idle_ttl {
            return Err(invalid(
                "refresh_max_age",
                "must be at least refresh_idle_ttl",
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(invalid("leeway", "must be at most 5m"));
        }
        if self.max_sessions_per_user == 0 {
            return Err(invalid("max_sessions_per_user", "must be at least 1"));
        }
        if self.audience.is_empty() {
            return Err(invalid("audience", "must not be empty"));
        }
        if self.client_id.is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        if self.issuer.as_deref() == Some("") {
            return Err(invalid("issuer", "must not be empty"));
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism
            || self.argon2_iterations == 0
            || self.argon2_parallelism == 0
        {
            return Err(invalid(
                "argon2_memory_kib",
                "argon2 needs t ≥ 1, p ≥ 1 and m ≥ 8·p KiB",
            ));
        }
        if self.redis_prefix.contains(['{', '}']) {
            return Err(invalid("redis_prefix", "must not contain { or }"));
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(30) {
            return Err(invalid("redis_timeout", "must be between 1ms and 30s"));
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be at least 1"));
        }
        if self.database_timeout.is_zero() || self.database_timeout > Duration::from_secs(60) {
            return Err(invalid("database_timeout", "must be between 1ms and 60s"));
        }
        if self.session_store == SessionStoreKind::Tiered && self.database().is_sqlite() {
            return Err(invalid(
                "session_store",
                "tiered needs a PostgreSQL or MySQL database_url (the source of truth several instances share)",
            ));
        }
        if let Database::Unsupported(scheme) = self.database() {
            return Err(invalid(
                "database_url",
                format!("unknown scheme {scheme:?}; use sqlite://, postgres:// or mysql://"),
            ));
        }
        if self.shutdown_delay > Duration::from_secs(60) {
            return Err(invalid("shutdown_delay", "must be at most 60s"));
        }
        if self.hash_concurrency == Some(0) {
            return Err(invalid("hash_concurrency", "must be at least 1"));
        }
        self.validate_clients()?;
        if self.jwks_max_age > Duration::from_secs(86_400) {
            return Err(invalid("jwks_max_age", "must be at most 24h"));
        }
        // Each secret is given inline or in a file, not both.
        for (name, both) in [
            (
                "admin_api_key",
                self.admin_api_key.is_some() && self.admin_api_key_file.is_some(),
            ),
            (
                "master_key",
                self.master_key.is_some() && self.master_key_file.is_some(),
            ),
            (
                "verifier_key",
                self.verifier_key.is_some() && self.verifier_key_file.is_some(),
            ),
        ] {
            if both {
                return Err(invalid(
                    name,
                    format!("set {name} or {name}_file, not both"),
                ));
            }
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for client in &self.clients {
            let id = client.id.as_str();
            if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    "clients",
                    "a client id must be 1 to 128 printable characters",
                ));
            }
            if id == self.client_id {
                return Err(invalid(
                    "clients",
                    format!("{id:?} is the first-party client (client_id); it is built in"),
                ));
            }
            if !seen.insert(id) {
                return Err(invalid("clients", format!("client {id:?} is listed twice")));
            }
            match &client.secret_sha256 {
                Some(hash) if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return Err(invalid(
                        "clients",
                        format!("client {id:?}: secret_sha256 must be 64 hex digits (from `tessera client create`)"),
                    ));
                }
                None if client.introspect => {
                    return Err(invalid(
                        "clients",
                        format!("client {id:?}: only a client with a secret may introspect"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Which database `database_url` names.
    pub fn database(&self) -> Database<'_> {
        let Some(url) = self.database_url.as_deref() else {
            return Database::EmbeddedSqlite;
        };
        let scheme = url.split_once(':').map_or(url, |(s, _)| s);
        match scheme {
            "sqlite" => Database::Sqlite(url),
            "postgres" | "postgresql" => Database::Postgres(url),
            "mysql" => Database::MySql(url),
            _ => Database::Unsupported(scheme),
        }
    }

    /// The issuer: the configured one, or `http://<listen>`.
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The admin API key, from the setting or its file. `Ok(None)`: the admin API is off.
    pub fn admin_key(&self) -> Result<Option<SecretString>, ConfigError> {
        secret_key(
            "admin_api_key",
            self.admin_api_key.as_ref(),
            self.admin_api_key_file.as_deref(),
        )
    }

    /// The master key text, from the setting or its file. `Ok(None)`: keys live in files.
    pub fn master_key_text(&self) -> Result<Option<SecretString>, ConfigError> {
        secret_key(
            "master_key",
            self.master_key.as_ref(),
            self.master_key_file.as_deref(),
        )
    }

    /// The verifier key, from the setting or its file. `Ok(None)`: none is configured.
    pub fn verifier_key(&self) -> Result<Option<SecretString>, ConfigError> {
        secret_key(
            "verifier_key",
            self.verifier_key.as_ref(),
            self.verifier_key_file.as_deref(),
        )
    }
}

/// A bearer key given inline or in a file (`<name>_file`), at least 32 characters long.
fn secret_key(
    name: &'static str,
    inline: Option<&SecretString>,
    file: Option<&std::path::Path>,
) -> Result<Option<SecretString>, ConfigError> {
    let key = match (inline, file) {
        (Some(key), _) => key.expose_secret().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| invalid(name, format!("cannot read {}: {e}", path.display())))?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if key.len() < 32 {
        return Err(invalid(
            name,
            "must be at least 32 characters; generate one with `openssl rand -base64 32`",
        ));
    }
    Ok(Some(SecretString::from(key)))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error by design
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_match_the_documentation() {
        let s = Settings::default();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.access_ttl, Duration::from_secs(300));
        assert_eq!(s.refresh_idle_ttl, Duration::from_secs(14 * 86_400));
        assert_eq!(s.refresh_max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(s.refresh_grace, Duration::from_secs(5));
        assert_eq!(s.max_sessions_per_user, 100);
        assert!(s.signup);
        assert_eq!(s.issuer(), "http://127.0.0.1:8080");
    }

    #[test]
    fn layers_override_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "tessera.toml",
                "access_ttl = \"2m\"\nsignup = false\naudience = \"file\"",
            )?;
            jail.set_env("TESSERA_ACCESS_TTL", "10m");
            jail.set_env("TESSERA_MAX_SESSIONS_PER_USER", "7");
            let flags = Figment::from(Serialized::default("audience", "flag"));
            let s = Settings::load(None, flags).expect("valid");
            assert_eq!(s.access_ttl, Duration::from_secs(600), "env beats file");
            assert!(!s.signup, "file beats default");
            assert_eq!(s.max_sessions_per_user, 7);
            assert_eq!(s.audience, "flag", "flags beat everything");
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_ACCESS_TTL", "soon");
            let err = Settings::load(None, Figment::new())
                .expect_err("invalid")
                .to_string();
            assert!(
                err.contains("access_ttl") && err.contains("TESSERA_ACCESS_TTL"),
                "{err}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_REFRESH_GRACE", "2m");
            let err = Settings::load(None, Figment::new())
                .expect_err("out of range")
                .to_string();
            assert!(
                err.contains("refresh_grace") && err.contains("TESSERA_REFRESH_GRACE"),
                "{err}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("tessera.toml", "acess_ttl = \"2m\"")?;
            let err = Settings::load(None, Figment::new())
                .expect_err("unknown key")
                .to_string();
            assert!(err.contains("acess_ttl"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_database_url_names_the_backend() {
        let mut s = Settings::default();
        assert_eq!(s.database(), Database::EmbeddedSqlite);
        for (url, is) in [
            ("postgres://h/db", Database::Postgres("postgres://h/db")),
            ("postgresql://h/db", Database::Postgres("postgresql://h/db")),
            ("mysql://h/db", Database::MySql("mysql://h/db")),
            ("sqlite:///tmp/t.db", Database::Sqlite("sqlite:///tmp/t.db")),
            ("oracle://h/db", Database::Unsupported("oracle")),
        ] {
            s.database_url = Some(url.into());
            assert_eq!(s.database(), is, "{url}");
        }
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_DATABASE_URL", "oracle://h/db");
            let err = Settings::load(None, Figment::new())
                .expect_err("unknown scheme")
                .to_string();
            assert!(err.contains("TESSERA_DATABASE_URL"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_SESSION_STORE", "tiered");
            let err = Settings::load(None, Figment::new())
                .expect_err("tiered on the embedded SQLite")
                .to_string();
            assert!(err.contains("TESSERA_SESSION_STORE"), "{err}");
            jail.set_env("TESSERA_DATABASE_URL", "postgres://h/db");
            Settings::load(None, Figment::new()).expect("tiered on PostgreSQL");
            Ok(())
        });
    }

    #[test]
    fn typos_in_env_var_names_are_reported() {
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_ACESS_TTL", "5m");
            assert!(Settings::unknown_env_vars().contains(&"TESSERA_ACESS_TTL".to_owned()));
            Ok(())
        });
    }

    #[test]
    fn admin_key_rules() {
        let mut s = Settings::default();
        assert!(
            s.admin_key().expect("none").is_none(),
            "no key: admin API off"
        );
        s.admin_api_key = Some(SecretString::from("short"));
        assert!(s.admin_key().is_err());
        s.admin_api_key = Some(SecretString::from("k".repeat(32)));
        assert!(s.admin_key().expect("ok").is_some());
        let rendered = format!("{:?} {}", s, serde_json::to_string(&s).expect("json"));
        assert!(
            !rendered.contains(&"k".repeat(32)),
            "the key never appears in output"
        );
    }

    #[test]
    fn clients_come_from_the_file_or_the_environment_and_are_checked() {
        let hash = "ab".repeat(32);
        Jail::expect_with(|jail| {
            jail.create_file(
                "tessera.toml",
                &format!(
                    "[[clients]]\nid = \"backend\"\nsecret_sha256 = \"{hash}\"\nintrospect = true\n\n[[clients]]\nid = \"spa\"\n"
                ),
            )?;
            let s = Settings::load(None, Figment::new()).expect("valid");
            assert_eq!(s.clients.len(), 2);
            assert!(s.clients[0].introspect && s.clients[1].secret_sha256.is_none());
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env(
                "TESSERA_CLIENTS",
                format!("[{{id=\"backend\", secret_sha256=\"{hash}\"}}]"),
            );
            let s = Settings::load(None, Figment::new()).expect("valid");
            assert_eq!(s.clients[0].id, "backend");
            Ok(())
        });
        let bad = |clients: &str| {
            Jail::expect_with(|jail| {
                jail.set_env("TESSERA_CLIENTS", clients);
                let err = Settings::load(None, Figment::new())
                    .expect_err(clients)
                    .to_string();
                assert!(err.contains("TESSERA_CLIENTS"), "{clients}: {err}");
                Ok(())
            })
        };
        bad("[{id=\"a\"}, {id=\"a\"}]"); // twice
        bad("[{id=\"tessera\"}]"); // the built-in first-party client
        bad("[{id=\"\"}]"); // empty
        bad("[{id=\"a\", secret_sha256=\"abc\"}]"); // not a SHA-256
        bad("[{id=\"a\", introspect=true}]"); // public clients cannot introspect
    }

    #[test]
    fn the_example_file_lists_every_key_with_its_default() {
        let example = include_str!("../../../tessera.example.toml");
        let parsed: Settings = toml_from(example);
        let defaults = serde_json::to_value(Settings::default()).expect("json");
        assert_eq!(
            serde_json::to_value(parsed).expect("json"),
            defaults,
            "example values are the defaults"
        );
        for key in Settings::keys() {
            assert!(
                example.contains(&format!("TESSERA_{}", key.to_uppercase())),
                "example documents {key}"
            );
        }
    }

    fn toml_from(text: &str) -> Settings {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(text))
            .extract()
            .expect("example parses")
    }
}
