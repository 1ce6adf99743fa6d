//! Prometheus metrics (`GET /metrics`, OpenMetrics text). Each application has its own registry,
//! so two instances in one process (tests) count apart. Labels come from route templates and
//! fixed outcome names, never from raw paths or user data, so their number stays bounded.
//!
//! Every metric is listed, with its labels, in `docs/operations.md`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// The labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// A route template.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// An outcome, scope, action or event name from a fixed set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Scope {
    scope: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    action: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenType {
    token_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    op: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpError {
    op: String,
    kind: String,
}

/// The store-operation metrics, shared with the [`crate::metered::Metered`] store.
#[derive(Debug, Clone)]
pub struct StoreOps {
    duration: Family<Op, Histogram, fn() -> Histogram>,
    errors: Family<OpError, Counter>,
}

impl StoreOps {
    /// Records one operation: its time, and its error kind if it failed.
    pub fn observe(&self, op: &str, took: std::time::Duration, error: Option<&str>) {
        self.duration
            .get_or_create(&Op { op: op.to_owned() })
            .observe(took.as_secs_f64());
        if let Some(kind) = error {
            self.errors
                .get_or_create(&OpError {
                    op: op.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }
}

/// How old the live-session count may be before a scrape counts again.
pub const LIVE_COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The counters and gauges of one application.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    store_unavailable: Family<RouteLabels, Counter>,
    logins: Family<Outcome, Counter>,
    refreshes: Family<Outcome, Counter>,
    reuse_detections: Counter,
    logouts: Family<Scope, Counter>,
    revocations: Family<TokenType, Counter>,
    admin_actions: Family<Action, Counter>,
    revocation_entries: Gauge,
    revocation_sync_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    live_sessions: Gauge,
    live_counted: std::sync::Mutex<Option<Instant>>,
    store_ops: StoreOps,
    /// Password hashing jobs queued or running, kept by the password pool.
    pub hash_queue: Gauge,
    /// Password verifications, counted by the password pool.
    pub password_checks: Counter,
}

/// Marks a response as a store failure (503 because the store did not answer), for the
/// `tessera_store_unavailable_total` counter.
#[derive(Debug, Clone, Copy)]
pub struct StoreUnavailable;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route template",
            http_duration.clone(),
        );
        let store_unavailable = Family::<RouteLabels, Counter>::default();
        registry.register(
            "store_unavailable",
            "Requests answered 503 because a store did not answer, by route template",
            store_unavailable.clone(),
        );
        let logins = Family::<Outcome, Counter>::default();
        registry.register(
            "logins",
            "Logins by outcome: ok, wrong_password, unknown_user, blocked, throttled",
            logins.clone(),
        );
        let refreshes = Family::<Outcome, Counter>::default();
        registry.register(
            "refreshes",
            "Refreshes by outcome: rotated, grace_retry, reused, expired, revoked, blocked, invalid, throttled, store_unavailable",
            refreshes.clone(),
        );
        let reuse_detections = Counter::default();
        registry.register(
            "refresh_reuse_detections",
            "Replayed refresh tokens: each revoked a session",
            reuse_detections.clone(),
        );
        let logouts = Family::<Scope, Counter>::default();
        registry.register(
            "logouts",
            "Logouts by scope: session, others, all, device (a session ended from the device list)",
            logouts.clone(),
        );
        let revocations = Family::<TokenType, Counter>::default();
        registry.register(
            "oauth_revocations",
            "Tokens revoked through /oauth/revoke, by type",
            revocations.clone(),
        );
        let admin_actions = Family::<Action, Counter>::default();
        registry.register(
            "admin_actions",
            "Admin actions: forced_logout, user_blocked, user_unblocked, session_ended, …",
            admin_actions.clone(),
        );
        let revocation_entries = Gauge::default();
        registry.register(
            "revocation_entries",
            "Live entries in this process's revocation state",
            revocation_entries.clone(),
        );
        let revocation_sync_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "revocation_sync_age_seconds",
            "Time since the revocation log was last read to its end (stale beyond 3 s: bearer checks fail closed)",
            revocation_sync_age.clone(),
        );
        let hash_queue = Gauge::default();
        registry.register(
            "password_hash_queue",
            "Password hashes queued or running on the argon2 threads",
            hash_queue.clone(),
        );
        let password_checks = Counter::default();
        registry.register(
            "password_checks",
            "Password verifications (argon2id), the dummy one for unknown users included",
            password_checks.clone(),
        );
        let live_sessions = Gauge::default();
        registry.register(
            "live_sessions",
            "Sessions neither revoked nor expired, counted at most every 30 s (SQL stores only)",
            live_sessions.clone(),
        );
        let store_ops = StoreOps {
            duration: Family::new_with_constructor(latency_histogram),
            errors: Family::default(),
        };
        registry.register(
            "store_operation_duration_seconds",
            "Time of each session-store operation",
            store_ops.duration.clone(),
        );
        registry.register(
            "store_errors",
            "Failed session-store operations, by operation and kind (unavailable, backend, conflict)",
            store_ops.errors.clone(),
        );
        Self {
            registry,
            live_sessions,
            live_counted: std::sync::Mutex::new(None),
            store_ops,
            http_requests,
            http_duration,
            store_unavailable,
            logins,
            refreshes,
            reuse_detections,
            logouts,
            revocations,
            admin_actions,
            revocation_entries,
            revocation_sync_age,
            hash_queue,
            password_checks,
        }
    }
}

impl Metrics {
    /// Counts one security event (the kinds and outcomes of [`crate::audit::event`]).
    pub fn event(&self, kind: &str, outcome: &str) {
        let label = |s: &str| Outcome {
            outcome: s.to_owned(),
        };
        let _ = match kind {
            "login" => self.logins.get_or_create(&label("ok")).inc(),
            "login_failed" | "login_throttled" => {
                let outcome = if kind == "login_throttled" {
                    "throttled"
                } else {
                    outcome
                };
                self.logins.get_or_create(&label(outcome)).inc()
            }
            "refresh" | "refresh_refused" => self.refreshes.get_or_create(&label(outcome)).inc(),
            "refresh_throttled" => self.refreshes.get_or_create(&label("throttled")).inc(),
            "refresh_reuse_detected" => {
                self.reuse_detections.inc();
                self.refreshes.get_or_create(&label(outcome)).inc()
            }
            "logout" => self
                .logouts
                .get_or_create(&Scope {
                    scope: outcome.to_owned(),
                })
                .inc(),
            // A user ending one of their own sessions from the device list.
            "session_ended" if outcome == "by_user" => self
                .logouts
                .get_or_create(&Scope {
                    scope: "device".into(),
                })
                .inc(),
            "token_revoked" => self
                .revocations
                .get_or_create(&TokenType {
                    token_type: outcome.to_owned(),
                })
                .inc(),
            _ => self
                .admin_actions
                .get_or_create(&Action {
                    action: kind.to_owned(),
                })
                .inc(),
        };
    }

    /// The handles the metered session store reports to.
    pub fn store_ops(&self) -> StoreOps {
        self.store_ops.clone()
    }

    /// Counts the live sessions again if the last count is older than [`LIVE_COUNT_EVERY`]
    /// (a count reads an index of the whole table: not on every scrape). A failed count leaves
    /// the last value.
    pub async fn refresh_live_sessions(&self, state: &AppState) {
        {
            let mut last = self
                .live_counted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < LIVE_COUNT_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Ok(Some(n)) = state.sessions.count_live_sessions(state.now()).await {
            self.live_sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts a refresh that could not be decided because a store did not answer.
    pub fn refresh_unavailable(&self) {
        self.refreshes
            .get_or_create(&Outcome {
                outcome: "store_unavailable".into(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric, the gauges read from `state` now.
    pub fn render(&self, state: &AppState) -> String {
        self.revocation_entries
            .set(i64::try_from(state.revocations.len()).unwrap_or(i64::MAX));
        self.revocation_sync_age.set(
            state
                .revocations
                .sync_age()
                .map_or(f64::INFINITY, |age| age.as_secs_f64()),
        );
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Middleware: counts and times every request by its route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Methods outside the standard ones are one label value, so a client cannot grow the set.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    let labels = RouteLabels { route };
    metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if response.extensions().get::<StoreUnavailable>().is_some() {
        metrics.store_unavailable.get_or_create(&labels).inc();
    }
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route: labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
