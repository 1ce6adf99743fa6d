//! Request bodies through the whole HTTP stack: any body, with any of the content types a client
//! might send (or none), to every route that reads a body, with no credentials, garbage ones or
//! the admin key, through the real router (every layer, extractor and handler) on a real embedded
//! store. Whatever the bytes, the answer is never a 5xx and every error is JSON (SECURITY F1–F3,
//! "bad input gets a clear 4xx").
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Method, Request};
use libfuzzer_sys::fuzz_target;
use tessera_core::ManualClock;
use tessera_server::datadir::{Access, DataDir};
use tessera_server::Settings;
use tower::ServiceExt as _;

const ADMIN_KEY: &str = "fuzz-admin-key-0123456789abcdef0123456789";

/// Routes that read a body, with the method that does.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/users"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"),
    ("POST", "/v1/auth/logout-all"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/introspect"),
    ("POST", "/v1/admin/users"),
    ("POST", "/v1/admin/sessions"),
    ("POST", "/v1/admin/users/alice/block"),
    ("DELETE", "/v1/auth/sessions/x"),
    ("GET", "/v1/auth/verify"),
];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    None,
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded; charset=latin1"),
    Some("multipart/form-data; boundary=x"),
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    clock: Arc<ManualClock>,
    state: tessera_server::state::AppState,
    router: axum::Router,
    _dir: tempfile::TempDir,
    _data: DataDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            data_dir: dir.path().join("data"),
            issuer: Some("https://tessera.fuzz".into()),
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            admin_api_key: Some(ADMIN_KEY.to_owned().into()),
            refresh_rate_limit: 0,
            login_address_limit: 0,
            ..Settings::default()
        };
        let data = DataDir::open(&settings.data_dir, Access::Exclusive).expect("data dir");
        let clock = Arc::new(ManualClock::starting_now());
        let (state, router) = runtime.block_on(async {
            let (state, _db) = tessera_server::build_state(settings, clock.clone(), &data)
                .await
                .expect("state");
            tessera_server::flows::login::create_user(
                &state,
                "alice",
                Some("correct horse battery staple".into()),
                vec![],
            )
            .await
            .expect("alice");
            (state.clone(), tessera_server::build_router(state))
        });
        Fixture {
            runtime,
            clock,
            state,
            router,
            _dir: dir,
            _data: data,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&[route, content_type, auth], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let fixture = fixture();
    // Each input a minute later: throttling delays (at most 60 s) never carry over, so every
    // input reaches the password check, and a finding depends less on the inputs before it.
    fixture.clock.advance(std::time::Duration::from_secs(61));
    // A server reads its revocation log every 250 ms; here nothing runs between inputs, so the
    // harness does it, well before the copy turns stale (which would rightly answer 503).
    let state = &fixture.state;
    if state
        .revocations
        .sync_age()
        .is_none_or(|age| age > std::time::Duration::from_secs(1))
    {
        fixture
            .runtime
            .block_on(state.revocations.sync(state.sessions.as_ref(), state.now()))
            .expect("the embedded log reads");
    }
    let (method, path) = ROUTES[usize::from(route) % ROUTES.len()];
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path);
    if let Some(ct) = CONTENT_TYPES[usize::from(content_type) % CONTENT_TYPES.len()] {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    match auth % 3 {
        1 => request = request.header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}")),
        2 => request = request.header(header::AUTHORIZATION, "Bearer eyJ.garbage.x"),
        _ => {}
    }
    // As on the wire: a body comes with its length.
    let request = request
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.to_vec()))
        .expect("request");
    let response = fixture
        .runtime
        .block_on(fixture.router.clone().oneshot(request))
        .expect("infallible");
    let status = response.status();
    // The embedded store is local and healthy: no answer may be a 5xx, 503 included.
    if status.is_server_error() {
        let body = fixture
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 64 * 1024))
            .unwrap_or_default();
        panic!(
            "{method} {path} answered {status}: {} (revocation state read {:?} ago)",
            String::from_utf8_lossy(&body),
            state.revocations.sync_age()
        );
    }
    if status.is_client_error() {
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{method} {path} {status}: {ct:?}"
        );
    }
});
