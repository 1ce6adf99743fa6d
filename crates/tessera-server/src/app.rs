//! Building and running the application: stores, keys, state, router, background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use tessera_core::access::AccessRules;
use tessera_core::password::{HashParams, PasswordHasher};
use tessera_core::session::SessionPolicy;
use tessera_core::verified::VerifiedCache;
use tessera_core::{Clock, SystemClock};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::datadir::{Access, DataDir};
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::passwords::PasswordPool;
use crate::revocations::{RevocationCache, TAIL_INTERVAL};
use crate::routes;
use crate::state::{AppState, Inner};
use crate::stores::{self, SqlDatabase};

/// How often expired rows are purged from the store.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Rows deleted per purge statement: small, so the write lock is held only briefly.
const PURGE_BATCH: u32 = 500;
/// Access tokens whose successful signature check is remembered.
const VERIFIED_CACHE_CAPACITY: usize = 100_000;
/// How long graceful shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The router with every route and layer. Pure: used by the server and by tests.
pub fn build_router(state: AppState) -> Router {
    let timeout = state.settings.request_timeout;
    let metrics_here = state.settings.metrics_listen.is_none();
    let tracked = state.clone();
    let mut router = Router::new();
    if metrics_here {
        router = router.merge(routes::health::metrics_router());
    }
    router
        .merge(routes::users::router())
        .merge(routes::auth::router())
        .merge(routes::sessions::router())
        .merge(routes::verify::router())
        .merge(routes::revocations::router())
        .merge(routes::admin::router())
        .merge(routes::oauth::router())
        .merge(routes::openapi::router())
        .merge(routes::health::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(limit_headers))
        // Outside the timeout and the header limit, so their answers are counted too.
        .layer(axum::middleware::from_fn_with_state(tracked, crate::metrics::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                    let path = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_else(|| "unmatched".into());
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    tracing::info_span!("request", method = %req.method(), route = %path, request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(|_| ApiError::internal(&"handler panicked").into_response()))
                .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))),
        )
}

/// The most header bytes (names and values) a request may carry; more is a 431 (SECURITY F4).
/// The listener refuses far larger header blocks before they are read whole.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

async fn limit_headers(request: Request<Body>, next: axum::middleware::Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!("the request headers must be at most {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Safety net: any error answer not already JSON (a framework rejection, a timeout) gets the
/// API's JSON error shape, keeping its status and headers (`Allow` on 405, for one).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request",
    };
    let description = status.canonical_reason().unwrap_or("error").to_lowercase();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = ApiError::new(status, code, description).into_response();
    let (body_parts, body) = body.into_parts();
    for (name, value) in body_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, body)
}

/// A built, bound, not yet running Tessera.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    database: SqlDatabase,
    _data_dir: DataDir,
}

impl Application {
    /// Builds the service on the system clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds the service with an injected clock (tests of expiry without sleeping).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let data_dir = DataDir::open(&settings.data_dir, Access::Exclusive)?;
        let (state, database) = build_state(settings, clock, &data_dir).await?;
        let listener = TcpListener::bind(state.settings.listen)
            .await
            .with_context(|| format!("while binding {}", state.settings.listen))?;
        let metrics_listener = match state.settings.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("while binding metrics_listen {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            state,
            database,
            _data_dir: data_dir,
        })
    }

    /// The bound address (the port is real even when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes: drains for `shutdown_delay` (serving, `/readyz` 503),
    /// stops accepting, finishes in-flight requests (at most 10 s), stops the background tasks,
    /// closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            metrics_listener,
            state,
            database,
            _data_dir,
        } = self;
        let mut tasks = vec![
            tokio::spawn(tail_revocations(state.clone())),
            tokio::spawn(purge_expired(state.clone())),
            tokio::spawn(follow_keys(state.clone())),
        ];
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(metrics_listener) = metrics_listener {
            let app = routes::health::metrics_router().with_state(state.clone());
            let stop = stop_rx.clone();
            tasks.push(tokio::spawn(crate::serve::serve(
                metrics_listener,
                app,
                stop,
            )));
        }
        let drained = state.clone();
        let app = build_router(state);
        let mut server = tokio::spawn(async move {
            crate::serve::serve(listener, app, stop_rx).await;
            Ok::<(), std::io::Error>(())
        });
        tokio::select! {
            result = &mut server => { result.context("server task")?.context("server")?; }
            () = shutdown => {
                // Draining: still serving, but not ready, so balancers stop sending new work.
                drained.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                let delay = drained.settings.shutdown_delay;
                if !delay.is_zero() {
                    tracing::info!(?delay, "shutting down: draining (readyz answers 503)");
                    tokio::time::sleep(delay).await;
                }
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop_tx.send(true);
                match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                    Ok(result) => result.context("server task")?.context("server")?,
                    Err(_) => {
                        tracing::warn!("in-flight requests did not finish in time");
                        server.abort();
                    }
                }
            }
        }
        for task in tasks {
            task.abort();
        }
        database.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the stores and keys and assembles the state. Used by the server and the admin commands.
pub async fn build_state(
    settings: Settings,
    clock: Arc<dyn Clock>,
    data_dir: &DataDir,
) -> anyhow::Result<(AppState, SqlDatabase)> {
    let database = SqlDatabase::open(&settings, data_dir, false)
        .await
        .context("while opening the database")?;
    let now = clock.now();
    let params = HashParams {
        memory_kib: settings.argon2_memory_kib,
        iterations: settings.argon2_iterations,
        parallelism: settings.argon2_parallelism,
    };
    let hasher = PasswordHasher::new(params).context("while setting up argon2")?;
    let concurrency = settings.hash_concurrency.unwrap_or_else(|| {
        2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let admin_key_hash = settings
        .admin_key()?
        .map(|k| Sha256::digest(k.expose_secret().as_bytes()).into());
    let verifier_key_hash = settings
        .verifier_key()?
        .map(|k| Sha256::digest(k.expose_secret().as_bytes()).into());
    let rules = AccessRules {
        issuer: settings.issuer(),
        audience: settings.audience.clone(),
        ttl: settings.access_ttl,
        leeway: settings.leeway,
    };
    let policy = SessionPolicy {
        idle_ttl: settings.refresh_idle_ttl,
        max_age: settings.refresh_max_age,
        grace: settings.refresh_grace,
    };
    let keep = rules.ttl + rules.leeway + Duration::from_secs(1);
    let users = database.users();
    let source = crate::keyring::Source::of(&settings, data_dir, users.clone())?;
    let keyring = crate::keyring::KeyRing::open(
        source,
        data_dir,
        settings.signing_alg,
        crate::keyring::Keep::of(&settings),
        now,
    )
    .await
    .context("while loading the keys")?;
    let sessions = stores::session_store(&settings, &database, keep).await?;
    let clients = crate::clients::Clients::from_settings(&settings);
    let metrics = crate::metrics::Metrics::default();
    let sessions: Arc<dyn tessera_store::SessionStore> =
        Arc::new(crate::metered::Metered::new(sessions, metrics.store_ops()));
    let state = AppState::new(Inner {
        clients,
        settings,
        users,
        sessions,
        keyring,
        revocations: RevocationCache::default(),
        passwords: PasswordPool::new(
            hasher,
            concurrency,
            metrics.hash_queue.clone(),
            metrics.password_checks.clone(),
        ),
        metrics,
        draining: Default::default(),
        clock,
        rules,
        policy,
        admin_key_hash,
        verifier_key_hash,
        verified: VerifiedCache::new(VERIFIED_CACHE_CAPACITY),
        user_cache: Default::default(),
        throttle: Default::default(),
        refresh_limit: Default::default(),
    });
    match state
        .revocations
        .sync(state.sessions.as_ref(), state.now())
        .await
    {
        Ok(loaded) => tracing::debug!(entries = loaded, "revocation state loaded"),
        // Not ready yet (readyz says so, bearer checks answer 503); the log is read again soon.
        Err(tessera_store::StoreError::Unavailable(e)) => {
            tracing::warn!(error = %e, "the revocation state could not be loaded yet; retrying")
        }
        Err(e) => return Err(e).context("while loading the revocation state"),
    }
    Ok((state, database))
}

/// How often the key ring is read again.
pub const KEY_INTERVAL: Duration = Duration::from_secs(1);

/// The least time between two reads of the log woken by the store's bus. One announcement is
/// read at once; a burst of them (every append is announced, this process's own too) is read
/// in batches of at most this age instead of one read per append.
pub const SIGNAL_GAP: Duration = Duration::from_millis(2);

/// Follows the revocation log for revocations made by other processes: at every tick, and at
/// once when the store's bus says another instance appended (Redis pub/sub).
async fn tail_revocations(state: AppState) {
    let mut tick = tokio::time::interval(TAIL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = state.sessions.revocation_signal();
    let mut last_read = tokio::time::Instant::now();
    loop {
        match &signal {
            Some(signal) => tokio::select! {
                _ = tick.tick() => {}
                () = signal.notified() => {
                    tokio::time::sleep_until(last_read + SIGNAL_GAP).await;
                }
            },
            None => {
                tick.tick().await;
            }
        }
        last_read = tokio::time::Instant::now();
        if let Err(e) = state
            .revocations
            .sync(state.sessions.as_ref(), state.now())
            .await
        {
            tracing::warn!(error = %e, "could not read the revocation log; retrying");
        }
    }
}

/// Keeps the keys in force current: a rotation made by `tessera keys rotate` (here or on another
/// instance sharing the ring) is read within [`KEY_INTERVAL`], and keys start and retire on time.
async fn follow_keys(state: AppState) {
    let mut tick = tokio::time::interval(KEY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = state.keys();
        match state.keyring.refresh(state.now()).await {
            Ok(true) => {
                let keys = state.keys();
                // A key that left (retired, or removed after a leak) must not live on through
                // the memory of tokens it verified.
                if before
                    .signing
                    .iter()
                    .any(|k| keys.signing.get(k.kid()).is_none())
                {
                    state.verified.clear();
                }
                tracing::info!(
                    signing_kid = keys.signing.current().kid(),
                    refresh_kid = %keys.refresh.current().kid,
                    "keys in force changed"
                );
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not read the keys; retrying")
            }
        }
    }
}

/// Deletes expired sessions and revocation entries in small batches, and forgets expired
/// entries in memory: expiry needs no cron job.
async fn purge_expired(state: AppState) {
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = state.now();
        state.revocations.purge(now);
        let idle = now.minus(crate::throttle::FAILURES_KEPT);
        loop {
            match state.users.purge_login_failures(idle, PURGE_BATCH).await {
                Ok(n) if n >= u64::from(PURGE_BATCH) => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "purge of old login failures failed; will retry");
                    break;
                }
            }
        }
        loop {
            match state
                .sessions
                .purge(now, state.revocation_keep(), PURGE_BATCH)
                .await
            {
                Ok(n) if n >= u64::from(PURGE_BATCH) => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "purge failed; will retry");
                    break;
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
