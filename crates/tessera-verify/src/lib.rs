//! Verify Tessera access tokens in any Rust service, locally, and still honour logout.
//!
//! A [`Verifier`] checks a bearer token with no network round trip in the common case:
//!
//! 1. the signature against Tessera's public keys (the JWKS, fetched at start, refetched when its
//!    `Cache-Control: max-age` runs out and — rate-limited — when a token names an unknown `kid`),
//!    and the claims strictly: algorithm from the key, `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf`
//!    with a leeway. A token that verified before is remembered until its `exp`, so a client
//!    presenting the same token again skips the signature;
//! 2. the revocation state on every use: denied tokens (logout), revoked sessions (logout, reuse
//!    detection, admin kill) and user cutoffs (log out everywhere, forced logout, blocking). The
//!    verifier keeps an in-memory copy, loaded from Tessera's `GET /v1/revocations` and kept
//!    current by the Server-Sent Events stream `GET /v1/revocations/stream`: a revocation made on
//!    Tessera reaches it within milliseconds (BENCHMARKS.md has the distribution).
//!
//! The copy is only trusted while the stream is heard from (heartbeats every second). After
//! [`Config::max_staleness`] of silence — Tessera down, the network cut, Tessera itself cut off
//! from its store — the verifier fails closed ([`VerifyError::Unavailable`], a 503), or, when
//! configured with [`WhenStale::AskTessera`], asks Tessera's `/v1/auth/verify` per request. It
//! reconnects and resyncs by itself.
//!
//! Tessera runs this very check ([`tessera_core::bearer`]) for its own bearer endpoints.
//!
//! # Example
//! ```no_run
//! use axum::{routing::get, Router};
//! use tessera_verify::{Claims, Config, RequireBearer, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::new("http://127.0.0.1:8080", "the verifier key", "http://127.0.0.1:8080", "tessera");
//! let verifier = Verifier::start(config)?;
//! let app: Router = Router::new()
//!     .route("/hello", get(|Claims(claims): Claims| async move { format!("hello {}", claims.sub) }))
//!     .layer(RequireBearer::new(verifier));
//! # Ok(()) }
//! ```
//!
//! A runnable resource server is in `examples/resource_server.rs`.
#![warn(missing_docs)]

mod feed;
mod jwks;
mod layer;
mod sse;

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tessera_core::access::{AccessRules, TokenError};
use tessera_core::bearer;
use tessera_core::jwk::PublicKeySet;
use tessera_core::jws::JwsError;
use tessera_core::revocation::RevocationSet;
use tessera_core::validity::Dead;
use tessera_core::verified::VerifiedCache;
use tessera_core::{Clock as _, SystemClock, Timestamp};

pub use layer::{Claims, RequireBearer, RequireBearerService};
pub use tessera_core::access::AccessClaims;

/// What to do while the revocation state may be out of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenStale {
    /// Refuse every token with [`VerifyError::Unavailable`] (503): a logout is never missed.
    #[default]
    FailClosed,
    /// Check the signature locally, then ask Tessera's `/v1/auth/verify` whether the token is
    /// alive: one request to Tessera per verification while the feed is down.
    AskTessera,
}

/// How a [`Verifier`] reaches Tessera and what it accepts.
#[derive(Clone)]
pub struct Config {
    /// Tessera's base URL, for example `http://127.0.0.1:8080`.
    pub url: String,
    /// The verifier key (Tessera's `verifier_key` setting) that reads the revocation feed.
    pub verifier_key: String,
    /// The only accepted `iss` (Tessera's `issuer` setting).
    pub issuer: String,
    /// The audience `aud` must name (Tessera's `audience` setting).
    pub audience: String,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`. Default 30 s; never more than
    /// Tessera's own leeway (learnt from the feed), since Tessera keeps revocations only that
    /// long past a token's `exp`.
    pub leeway: Duration,
    /// How long the feed may be silent before the copy is no longer trusted. Default 5 s.
    pub max_staleness: Duration,
    /// What to do then. Default [`WhenStale::FailClosed`].
    pub when_stale: WhenStale,
    /// The shortest time between two JWKS fetches caused by unknown `kid`s, so that tokens with
    /// made-up key ids cannot make the verifier hammer Tessera. Default 10 s.
    pub jwks_min_refetch: Duration,
    /// How many verified tokens are remembered. Default 100 000.
    pub cache_capacity: usize,
    /// Timeout of each request to Tessera other than the stream. Default 5 s.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The verifier key is a secret: never in logs.
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("verifier_key", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("max_staleness", &self.max_staleness)
            .field("when_stale", &self.when_stale)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration with the defaults.
    pub fn new(
        url: impl Into<String>,
        verifier_key: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            verifier_key: verifier_key.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            max_staleness: Duration::from_secs(5),
            when_stale: WhenStale::FailClosed,
            jwks_min_refetch: Duration::from_secs(10),
            cache_capacity: 100_000,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not an authentic, current token of this issuer for this audience.
    #[error(transparent)]
    Invalid(#[from] TokenError),
    /// Authentic but revoked; `None` when Tessera said so (fallback mode) without a reason.
    #[error("token revoked")]
    Revoked(Option<Dead>),
    /// The verifier cannot decide: its revocation state is stale (and it fails closed), or
    /// Tessera could not be asked.
    #[error("cannot verify now")]
    Unavailable,
}

impl VerifyError {
    /// The error code for the `WWW-Authenticate` header (RFC 6750 §3.1) or the JSON body:
    /// `token_expired` tells a client to refresh.
    pub fn code(self) -> &'static str {
        match self {
            VerifyError::Invalid(e) => e.code(),
            VerifyError::Revoked(_) => "invalid_token",
            VerifyError::Unavailable => "temporarily_unavailable",
        }
    }
}

/// Why [`Verifier::start`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The URL does not parse, or is not http(s).
    #[error("invalid Tessera URL {0:?}")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What the verifier knows, for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Whether the revocation state is current (the feed was heard within the bound).
    pub fresh: bool,
    /// The feed cursor of the copy.
    pub cursor: u64,
    /// Revocation entries held.
    pub entries: usize,
    /// Usable public keys.
    pub keys: usize,
    /// Connections to the feed made so far (1 after the first).
    pub connections: u64,
    /// The leeway in force (the configured one, or Tessera's if smaller).
    pub leeway: Duration,
}

/// Verifies Tessera access tokens; cheap to clone (shared state). Background tasks keep its
/// keys and revocation state current while any clone lives.
#[derive(Debug, Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

/// Aborts the background tasks when the last clone of the verifier goes.
#[derive(Debug)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) http: reqwest::Client,
    pub(crate) rules: RwLock<Arc<AccessRules>>,
    pub(crate) keys: RwLock<Arc<PublicKeySet>>,
    /// Whether a JWKS was ever loaded: before, nothing can be decided (503, not 401).
    pub(crate) jwks_loaded: std::sync::atomic::AtomicBool,
    pub(crate) jwks_fetched: Mutex<Option<Instant>>,
    pub(crate) jwks_refetch: tokio::sync::Mutex<()>,
    pub(crate) revocations: RwLock<RevocationSet>,
    pub(crate) cursor: std::sync::atomic::AtomicU64,
    pub(crate) heard: Mutex<Option<Instant>>,
    pub(crate) connections: std::sync::atomic::AtomicU64,
    pub(crate) verified: VerifiedCache,
    pub(crate) ready: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.url)
    }

    pub(crate) fn heard_now(&self) {
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.ready.notify_waiters();
    }

    fn is_fresh(&self) -> bool {
        self.heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() <= self.config.max_staleness)
    }

    pub(crate) fn keys(&self) -> Arc<PublicKeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn rules(&self) -> Arc<AccessRules> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adopts what Tessera says of its tokens: their lifetime (no token may claim a longer one)
    /// and its leeway (ours may not be larger: its revocation entries last only that long past
    /// a token's `exp`).
    pub(crate) fn adopt(&self, access_ttl: Duration, leeway: Duration) {
        let current = self.rules();
        let leeway = self.config.leeway.min(leeway);
        if current.ttl != access_ttl || current.leeway != leeway {
            *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(AccessRules {
                ttl: access_ttl,
                leeway,
                ..(*current).clone()
            });
        }
    }
}

impl Verifier {
    /// Starts a verifier for `config`: fetches the keys and the revocation state in the
    /// background and follows the feed. Until the first load, tokens are refused as
    /// [`VerifyError::Unavailable`]; [`ready`](Self::ready) waits for it. Needs a Tokio runtime.
    pub fn start(config: Config) -> Result<Self, StartError> {
        let parsed =
            reqwest::Url::parse(&config.url).map_err(|_| StartError::Url(config.url.clone()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StartError::Url(config.url.clone()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .build()?;
        let rules = AccessRules {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            // Unknown until the first snapshot says (zero: not checked).
            ttl: Duration::ZERO,
            leeway: config.leeway,
        };
        let shared = Arc::new(Shared {
            verified: VerifiedCache::new(config.cache_capacity),
            config,
            http,
            rules: RwLock::new(Arc::new(rules)),
            keys: RwLock::default(),
            jwks_loaded: Default::default(),
            jwks_fetched: Mutex::new(None),
            jwks_refetch: tokio::sync::Mutex::new(()),
            revocations: RwLock::default(),
            cursor: Default::default(),
            heard: Mutex::new(None),
            connections: Default::default(),
            ready: tokio::sync::Notify::new(),
        });
        let tasks = vec![
            tokio::spawn(jwks::keep_current(Arc::downgrade(&shared))),
            tokio::spawn(feed::follow(Arc::downgrade(&shared))),
        ];
        Ok(Self {
            shared,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    /// Waits until the keys and the revocation state are loaded, at most `timeout`. Returns
    /// whether they are.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.ready.notified();
            if self.shared.is_fresh() && !self.shared.keys().is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.is_fresh() && !self.shared.keys().is_empty();
            }
        }
    }

    /// Verifies `token` with no I/O: the signature against the keys held (an unknown `kid` is
    /// not fetched), the claims, and the revocation state (a stale state fails closed whatever
    /// [`Config::when_stale`] says). For hot paths that must never wait.
    pub fn verify_local(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        let now = SystemClock.now();
        self.loaded()?;
        let claims = self.claims(token, now)?;
        if !self.shared.is_fresh() {
            return Err(VerifyError::Unavailable);
        }
        self.alive(&claims, now)?;
        Ok(claims)
    }

    /// Verifies `token`: as [`verify_local`](Self::verify_local), but a token naming a key not
    /// yet held refetches the JWKS (rate-limited), and a stale state follows
    /// [`Config::when_stale`].
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        let now = SystemClock.now();
        self.loaded()?;
        let claims = match self.claims(token, now) {
            Err(VerifyError::Invalid(TokenError::Jws(JwsError::UnknownKey))) => {
                if jwks::refetch_for_unknown_kid(&self.shared, token).await {
                    self.claims(token, now)?
                } else {
                    return Err(VerifyError::Invalid(TokenError::Jws(JwsError::UnknownKey)));
                }
            }
            other => other?,
        };
        if self.shared.is_fresh() {
            self.alive(&claims, now)?;
            return Ok(claims);
        }
        match self.shared.config.when_stale {
            WhenStale::FailClosed => Err(VerifyError::Unavailable),
            WhenStale::AskTessera => {
                feed::ask_tessera(&self.shared, token).await?;
                Ok(claims)
            }
        }
    }

    /// What the verifier holds now.
    pub fn status(&self) -> Status {
        use std::sync::atomic::Ordering;
        Status {
            fresh: self.shared.is_fresh(),
            cursor: self.shared.cursor.load(Ordering::Acquire),
            entries: self
                .shared
                .revocations
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            keys: self.shared.keys().len(),
            connections: self.shared.connections.load(Ordering::Relaxed),
            leeway: self.shared.rules().leeway,
        }
    }

    /// Nothing can be decided before the keys were loaded once: 503, not a 401 that would make
    /// clients throw away good tokens.
    fn loaded(&self) -> Result<(), VerifyError> {
        if self
            .shared
            .jwks_loaded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            Ok(())
        } else {
            Err(VerifyError::Unavailable)
        }
    }

    fn claims(&self, token: &str, now: Timestamp) -> Result<Arc<AccessClaims>, VerifyError> {
        let keys = self.shared.keys();
        let rules = self.shared.rules();
        Ok(bearer::claims(
            token,
            keys.as_ref(),
            &rules,
            &self.shared.verified,
            now,
        )?)
    }

    fn alive(&self, claims: &AccessClaims, now: Timestamp) -> Result<(), VerifyError> {
        let set = self
            .shared
            .revocations
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        bearer::alive(claims, &set, now).map_err(|d| VerifyError::Revoked(Some(d)))
    }
}
