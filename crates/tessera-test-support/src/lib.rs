//! Test harness for Tessera's API tests: [`spawn_app`] starts a real server on a free loopback
//! port with its own temporary data directory and an injected [`ManualClock`], and returns a
//! [`TestApp`] with one helper per endpoint. Everything is removed when the `TestApp` drops.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tessera_core::ManualClock;
use tessera_server::{Application, Settings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The admin API key every test app is configured with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";
/// A master key (32 bytes, base64) for instances that share their keys through the store.
pub const MASTER_KEY: &str = "dGVzc2VyYS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";
/// The verifier key of test apps (reads the revocation feed).
pub const VERIFIER_KEY: &str = "test-verifier-key-0123456789abcdef012345";
/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running Tessera for one test.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for it.
    pub client: reqwest::Client,
    /// The clock the server reads; move it with `clock.advance(…)`.
    pub clock: Arc<ManualClock>,
    /// The settings it runs with.
    pub settings: Settings,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
    /// Whether dropping this app deletes its Redis keys (not when another app shares them).
    pub cleanup_redis: bool,
    /// The PostgreSQL schema or MySQL database of this app, dropped after it.
    pub database: Option<Database>,
}

/// A database server's private space for one test.
#[derive(Debug)]
pub enum Database {
    /// A PostgreSQL schema.
    Postgres(PgSchema),
    /// A MySQL/MariaDB database.
    MySql(MySqlDatabase),
}

/// Where a test app keeps users and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite in the data directory.
    Sqlite,
    /// SQLite for users, the local Redis for sessions.
    Redis,
    /// A PostgreSQL schema of the test's own.
    Postgres,
    /// A MySQL/MariaDB database of the test's own.
    MySql,
    /// A PostgreSQL schema as the source of truth, the local Redis in front.
    Tiered,
}

/// Tokens from a login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Access token.
    pub access: String,
    /// Refresh token.
    pub refresh: String,
    /// Session id.
    pub session_id: String,
    /// User id.
    pub user_id: String,
}

impl Tokens {
    fn from_json(v: &Value) -> Self {
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("token response lacks {k}: {v}"))
                .to_owned()
        };
        Self {
            access: s("access_token"),
            refresh: s("refresh_token"),
            session_id: s("session_id"),
            user_id: s("user_id"),
        }
    }
}

/// Settings for a test: loopback port 0, cheap argon2 (tests are not benchmarks), an admin key.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("data"),
        issuer: Some("http://tessera.test".into()),
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        admin_api_key: Some(ADMIN_KEY.to_owned().into()),
        verifier_key: Some(VERIFIER_KEY.to_owned().into()),
        ..Settings::default()
    }
}

/// The Redis the suites use: `TESSERA_TEST_REDIS_URL`, default the local one.
pub fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Puts sessions in Redis under a key prefix of this test's own (deleted when the app drops).
pub fn use_redis(settings: &mut Settings) {
    settings.session_store = tessera_server::config::SessionStoreKind::Redis;
    settings.redis_url = redis_url();
    settings.redis_prefix = format!(
        "test{}:",
        tessera_core::ids::SessionId::random()
            .to_string()
            .replace(['-', '_'], "x")
    );
    settings.redis_timeout = Duration::from_secs(2);
}

pub use tessera_test_servers::delete_redis_prefix;
use tessera_test_servers::{MySqlDatabase, PgSchema};

/// Starts a Tessera on `backend`, with the test settings changed by `configure`.
pub async fn spawn_app_on(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    use tessera_server::config::SessionStoreKind;
    let mut database = None;
    let mut app = spawn_app_with(|s| {
        match backend {
            Backend::Sqlite => {}
            Backend::Redis => use_redis(s),
            Backend::Postgres | Backend::Tiered => {
                let schema = PgSchema::create();
                s.database_url = Some(schema.url());
                // Generous: tests share two cores; fault tests set their own.
                s.database_timeout = Duration::from_secs(10);
                database = Some(Database::Postgres(schema));
                if backend == Backend::Tiered {
                    use_redis(s);
                    s.session_store = SessionStoreKind::Tiered;
                }
            }
            Backend::MySql => {
                let db = MySqlDatabase::create();
                s.database_url = Some(db.url());
                s.database_timeout = Duration::from_secs(10);
                database = Some(Database::MySql(db));
            }
        }
        configure(s);
    })
    .await;
    app.database = database;
    app
}

/// Starts a Tessera with the test settings, changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    let clock = Arc::new(ManualClock::starting_now());
    let mut app = TestApp {
        base: String::new(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        clock,
        settings,
        dir,
        stop: None,
        task: None,
        cleanup_redis: true,
        database: None,
    };
    app.start().await;
    app
}

/// Starts a Tessera with the test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl TestApp {
    async fn start(&mut self) {
        let app = Application::build_with_clock(self.settings.clone(), self.clock.clone())
            .await
            .expect("the test app builds");
        self.base = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
        }));
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Stops the server and starts it again on the same data directory (a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Stops the server and starts it again on the same data directory and the same port, as a
    /// restarted service comes back at its address.
    pub async fn restart_in_place(&mut self) {
        let addr = self.addr();
        self.stop().await;
        let before = self.settings.listen;
        self.settings.listen = addr;
        self.start().await;
        self.settings.listen = before;
    }

    /// The address the app listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("the app's address")
    }

    /// A second instance beside this one with the same keys (copied into a data directory of
    /// its own, as a deployment of several instances shares them), its settings changed by
    /// `configure` (point it at the same stores there).
    pub async fn second_instance(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.temp_dir().join("second-data");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::copy(self.data_dir().join("keys.json"), dir.join("keys.json")).expect("keys");
        spawn_app_with(|s| {
            s.data_dir = dir;
            configure(s);
        })
        .await
    }

    /// A second instance beside this one with a data directory of its own and nothing copied:
    /// for instances that share their keys through the store (`master_key`), its settings
    /// changed by `configure`.
    pub async fn peer(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = self.temp_dir().join("peer-data");
        spawn_app_with(|s| {
            s.data_dir = dir;
            configure(s);
        })
        .await
    }

    /// The data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.settings.data_dir.clone()
    }

    /// The temporary directory holding everything of this app.
    pub fn temp_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A request to `path`.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `POST /v1/users`.
    pub async fn sign_up(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/users",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// `POST /v1/auth/login`.
    pub async fn login_raw(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Signs up `username` with [`PASSWORD`] and logs in.
    pub async fn user(&self, username: &str) -> Tokens {
        let r = self.sign_up(username, PASSWORD).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "sign-up of {username}: {}",
            r.text().await.unwrap_or_default()
        );
        self.login(username).await
    }

    /// Logs in `username` with [`PASSWORD`].
    pub async fn login(&self, username: &str) -> Tokens {
        let r = self.login_raw(username, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK, "login of {username}");
        Tokens::from_json(&r.json().await.expect("json"))
    }

    /// `POST /v1/auth/refresh`.
    pub async fn refresh_raw(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// Refreshes and expects success.
    pub async fn refresh(&self, refresh_token: &str) -> Tokens {
        let r = self.refresh_raw(refresh_token).await;
        assert_eq!(r.status(), StatusCode::OK, "refresh");
        Tokens::from_json(&r.json().await.expect("json"))
    }

    /// `POST /v1/auth/logout` with a bearer token and a scope.
    pub async fn logout(&self, access: &str, scope: &str) -> Response {
        self.request(Method::POST, "/v1/auth/logout")
            .bearer_auth(access)
            .json(&json!({ "scope": scope }))
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with a bearer token.
    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path)
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// The status of `GET /v1/auth/verify` with `access`.
    pub async fn verify(&self, access: &str) -> StatusCode {
        self.get_bearer("/v1/auth/verify", access).await.status()
    }

    /// How long until this app refuses `token` at `verify` (polled every 5 ms), up to `limit`.
    pub async fn refused_within(&self, token: &str, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if self.verify(token).await == StatusCode::UNAUTHORIZED {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// An admin API call.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self.request(method, path).bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if self.settings.session_store != tessera_server::config::SessionStoreKind::Sql
            && self.cleanup_redis
        {
            delete_redis_prefix(&self.settings.redis_url, &self.settings.redis_prefix);
        }
    }
}

/// The claims of a JWT, decoded without any check (for assertions on what was issued).
pub fn claims_of(jwt: &str) -> Value {
    segment_of(jwt, 1)
}

/// The header of a JWT (not verified).
pub fn header_of(jwt: &str) -> Value {
    segment_of(jwt, 0)
}

fn segment_of(jwt: &str, index: usize) -> Value {
    use base64::Engine as _;
    let segment = jwt.split('.').nth(index).expect("a JWT has three segments");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON object")
}

/// Parses a response's JSON body, asserting its `Content-Type`.
pub async fn json_body(response: Response) -> Value {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    response.json().await.expect("a JSON body")
}
