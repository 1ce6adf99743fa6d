//! The `tessera` binary itself: serving, graceful shutdown, the data-directory lock, admin commands
//! beside a running server, configuration errors, and logs free of secrets.

mod common;

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{serve, tessera};

const PASSWORD: &str = "correct horse battery staple";

async fn post(addr: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(body)
        .send()
        .await
        .expect("request");
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Signs `name` up with the test password.
async fn sign_up(addr: &str, name: &str) {
    let body = serde_json::json!({ "username": name, "password": PASSWORD });
    let (status, answer) = post(addr, "/v1/users", &body).await;
    assert_eq!(status, 201, "{answer}");
}

/// Logs `name` in; the token response.
async fn login(addr: &str, name: &str) -> serde_json::Value {
    let body = serde_json::json!({ "username": name, "password": PASSWORD });
    let (status, tokens) = post(addr, "/v1/auth/login", &body).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn verify(addr: &str, bearer: &str) -> u16 {
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/v1/auth/verify"))
        .bearer_auth(bearer)
        .send()
        .await;
    r.expect("request").status().as_u16()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn serve_admin_commands_beside_it_graceful_stop_and_clean_logs() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = serve(dir.path());
    let addr = server.addr.clone();

    let (status, _) = post(
        &addr,
        "/v1/users",
        &serde_json::json!({ "username": "alice", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 201);
    let (status, tokens) = post(
        &addr,
        "/v1/auth/login",
        &serde_json::json!({ "username": "alice", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().expect("at").to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("rt").to_owned();
    let (status, _) = post(
        &addr,
        "/v1/auth/refresh",
        &serde_json::json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(verify(&addr, &access).await, 200);

    // A second server on the same data directory refuses to start, with a clear message.
    let second = tessera(dir.path()).arg("serve").output().expect("second");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr)
        .contains("another Tessera process is already serving"));

    // Admin commands work beside the running server, which sees the block within a second.
    let mut create = tessera(dir.path())
        .args(["user", "create", "bob", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("create");
    writeln!(create.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
    let created = create.wait_with_output().expect("create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    let (status, _) = post(
        &addr,
        "/v1/auth/login",
        &serde_json::json!({ "username": "bob", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 200, "the CLI-created user logs in");

    let block = tessera(dir.path())
        .args(["user", "block", "alice"])
        .output()
        .expect("block");
    assert!(
        block.status.success(),
        "{}",
        String::from_utf8_lossy(&block.stderr)
    );
    let mut refused = false;
    for _ in 0..40 {
        if verify(&addr, &access).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the running server honours the block");

    // SIGTERM: graceful stop, exit 0.
    sigterm(&server.child);
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");

    // No password, token or tag anywhere in the logs.
    let logs: Vec<String> = server.lines.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("\"event\":\"login\"")),
        "audit events are logged"
    );
    let tag = refresh.rsplit('.').next().expect("tag");
    for secret in [PASSWORD, access.as_str(), refresh.as_str(), tag] {
        assert!(
            !logs.iter().any(|l| l.contains(secret)),
            "a secret leaked into the logs"
        );
    }
}

#[test]
fn a_bad_setting_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = tessera(dir.path())
        .env("TESSERA_ACCESS_TTL", "soon")
        .args(["config", "check"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access_ttl") && err.contains("TESSERA_ACCESS_TTL"),
        "{err}"
    );

    let out = tessera(dir.path())
        .env("TESSERA_ADMIN_API_KEY", "short")
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin_api_key"));

    let ok = tessera(dir.path())
        .env("TESSERA_ADMIN_API_KEY", "k".repeat(40))
        .args(["config", "check"])
        .output()
        .expect("run");
    assert!(ok.status.success());
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("[redacted]") && !text.contains(&"k".repeat(40)),
        "{text}"
    );
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "migrate", "user", "config", "client", "keys"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn keys_rotate_and_list_on_a_data_directory_and_on_a_shared_ring() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = tessera(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(&["keys", "list"], &[]);
    assert!(ok && text.contains("no keys yet"), "{text}");
    let (ok, text) = run(&["keys", "rotate", "--after", "0s"], &[]);
    assert!(ok && text.contains("take over at"), "{text}");
    let (ok, text) = run(&["keys", "list"], &[]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("current").count(), 2, "{text}");

    // With a master key, the ring goes to the database, sealed; keys.json is carried over.
    let master = [(
        "TESSERA_MASTER_KEY",
        "dGVzc2VyYS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=",
    )];
    let (ok, text) = run(&["keys", "rotate", "--after", "10m"], &master);
    assert!(ok, "{text}");
    let (ok, text) = run(&["keys", "list"], &master);
    assert!(ok, "{text}");
    assert!(text.contains("takes over at"), "{text}");
    assert_eq!(
        text.matches("current").count(),
        2,
        "keys.json carried over: {text}"
    );
    let wrong = [(
        "TESSERA_MASTER_KEY",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )];
    let (ok, text) = run(&["keys", "list"], &wrong);
    assert!(!ok && text.contains("does not open"), "{text}");
}

#[test]
fn migrations_run_at_start_or_by_tessera_migrate() {
    let dir = tempfile::tempdir().expect("tmp");
    let schema = tessera_test_servers::PgSchema::create();
    let run = |args: &[&str], auto: &str| {
        tessera(dir.path())
            .env("TESSERA_DATABASE_URL", schema.url())
            .env("TESSERA_AUTO_MIGRATE", auto)
            .args(args)
            .output()
            .expect("run")
    };
    // With auto_migrate off, a schema that is behind stops the start and says what to run.
    let refused = run(&["user", "list"], "false");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("tessera migrate"), "{err}");

    let first = run(&["migrate"], "false");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied migration(s) [1, 2, 3]"));
    let again = run(&["migrate"], "false");
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let listed = run(&["user", "list"], "false");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // With auto_migrate on (the default), a fresh schema is migrated at start.
    let fresh = tessera_test_servers::PgSchema::create();
    let out = tessera(dir.path())
        .env("TESSERA_DATABASE_URL", fresh.url())
        .args(["user", "list"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fresh.psql("select count(*) from users").as_deref(), Ok("0"));
}

#[tokio::test]
async fn client_create_prints_an_entry_that_works_once_configured() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = tessera(dir.path())
        .args(["client", "create", "billing", "--introspect"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let secret = stderr.lines().last().expect("the secret").trim().to_owned();
    assert!(!text.contains(&secret), "the secret stays out of the entry");
    assert_eq!(secret.len(), 43, "256 bits: {text}");
    // Pasted into the configuration as printed.
    std::fs::write(dir.path().join("tessera.toml"), &text).expect("config");
    let again = tessera(dir.path())
        .args(["client", "create", "billing"])
        .output()
        .expect("run");
    assert!(!again.status.success(), "an existing id is refused");

    let server = serve(dir.path());
    let addr = server.addr.clone();
    sign_up(&addr, "alice").await;
    let (status, tokens) = post(
        &addr,
        "/v1/auth/login",
        &serde_json::json!({
            "username": "alice", "password": PASSWORD,
            "client_id": "billing", "client_secret": secret,
        }),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = |secret: String| {
        let rt = tokens["refresh_token"].as_str().expect("rt").to_owned();
        let addr = addr.clone();
        async move {
            reqwest::Client::new()
                .post(format!("http://{addr}/oauth/token"))
                .basic_auth("billing", Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(refresh("not-the-secret".into()).await, 401);
    assert_eq!(refresh(secret).await, 200);
}

/// `tessera doctor` in `dir` with extra environment variables: exit status and report.
fn doctor(dir: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = tessera(dir)
        .envs(env.iter().copied())
        .arg("doctor")
        .output()
        .expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn doctor_passes_a_sound_setup_and_names_what_is_wrong() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let (ok, report) = doctor(dir.path(), &[]);
    assert!(ok, "a fresh setup is fine (warnings only): {report}");
    // Keys made by a first use of the data directory.
    let out = tessera(dir.path())
        .args(["user", "list"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let (ok, report) = doctor(dir.path(), &[]);
    assert!(ok && !report.contains("FAIL"), "{report}");
    assert!(report.contains("ok    keys"), "{report}");

    // A key file others can read.
    let keys = dir.path().join("data/keys.json");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, report) = doctor(dir.path(), &[]);
    assert!(!ok, "{report}");
    assert!(
        report.contains("FAIL  keys") && report.contains("chmod 600"),
        "{report}"
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A database nobody answers at.
    let (ok, report) = doctor(
        dir.path(),
        &[
            ("TESSERA_DATABASE_URL", "postgres://127.0.0.1:1/nothing"),
            ("TESSERA_DATABASE_TIMEOUT", "1s"),
        ],
    );
    assert!(!ok, "{report}");
    assert!(
        report.contains("FAIL  database") && report.contains("unreachable"),
        "{report}"
    );

    // A Redis that may evict Tessera's keys, and one that is not there at all.
    let redis = tessera_test_servers::RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let url = redis.url();
    let (ok, report) = doctor(
        dir.path(),
        &[
            ("TESSERA_SESSION_STORE", "redis"),
            ("TESSERA_REDIS_URL", &url),
        ],
    );
    assert!(!ok, "{report}");
    assert!(
        report.contains("maxmemory-policy is allkeys-lru") && report.contains("noeviction"),
        "{report}"
    );
    assert!(report.contains("persistence: AOF off"), "{report}");
    redis
        .cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .expect("config set");
    let (ok, report) = doctor(
        dir.path(),
        &[
            ("TESSERA_SESSION_STORE", "redis"),
            ("TESSERA_REDIS_URL", &url),
        ],
    );
    assert!(ok, "{report}");
    drop(redis);
    let (ok, report) = doctor(
        dir.path(),
        &[
            ("TESSERA_SESSION_STORE", "redis"),
            ("TESSERA_REDIS_URL", &url),
        ],
    );
    assert!(!ok && report.contains("FAIL  redis"), "{report}");
}

#[tokio::test]
async fn backup_while_serving_then_restore_keeps_every_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let backup_dir = dir.path().join("backup");
    let mut server = serve(dir.path());
    let addr = server.addr.clone();
    sign_up(&addr, "alice").await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(login(&addr, "alice").await);
    }
    let out = tessera(dir.path())
        .arg("backup")
        .arg(&backup_dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up 3 session(s)"));
    let again = tessera(dir.path())
        .arg("backup")
        .arg(&backup_dir)
        .output()
        .expect("run");
    assert!(
        !again.status.success(),
        "an existing backup is never overwritten"
    );
    let busy = tessera(dir.path())
        .arg("restore")
        .arg(&backup_dir)
        .output()
        .expect("run");
    assert!(!busy.status.success(), "no restore under a running server");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("stop the server"));

    sigterm(&server.child);
    assert!(server.child.wait().expect("wait").success());
    // The data is lost.
    for name in [
        "tessera.db",
        "tessera.db-wal",
        "tessera.db-shm",
        "keys.json",
    ] {
        let _ = std::fs::remove_file(dir.path().join("data").join(name));
    }
    let out = tessera(dir.path())
        .arg("restore")
        .arg(&backup_dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");

    let server = serve(dir.path());
    for tokens in &sessions {
        assert_eq!(
            verify(&server.addr, tokens["access_token"].as_str().expect("at")).await,
            200,
            "the keys came back"
        );
        let (status, _) = post(
            &server.addr,
            "/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": tokens["refresh_token"] }),
        )
        .await;
        assert_eq!(status, 200, "every session refreshes after the restore");
    }
}

#[tokio::test]
async fn export_from_sqlite_import_into_postgres_keeps_sessions_and_revocations() {
    let from = tempfile::tempdir().expect("tmp");
    let server = serve(from.path());
    let addr = server.addr.clone();
    for name in ["alice", "bob"] {
        sign_up(&addr, name).await;
    }
    let live = vec![login(&addr, "alice").await, login(&addr, "alice").await];
    let logged_out = login(&addr, "alice").await;
    let bobs = login(&addr, "bob").await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/auth/logout"))
        .bearer_auth(logged_out["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let out = tessera(from.path())
        .args(["user", "block", "bob"])
        .output()
        .expect("block");
    assert!(out.status.success(), "{out:?}");

    // Exported while the server runs.
    let file = from.path().join("export.jsonl");
    let out = tessera(from.path())
        .arg("export")
        .arg(&file)
        .output()
        .expect("export");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("exported 2 user(s), 2 session(s)"),
        "{out:?}"
    );
    drop(server);

    // A new deployment on PostgreSQL with the same keys.
    let to = tempfile::tempdir().expect("tmp");
    let schema = tessera_test_servers::PgSchema::create();
    std::fs::create_dir_all(to.path().join("data")).expect("dir");
    std::fs::copy(
        from.path().join("data/keys.json"),
        to.path().join("data/keys.json"),
    )
    .expect("keys");
    let pg = |cmd: &mut Command| {
        cmd.env("TESSERA_DATABASE_URL", schema.url());
    };
    let mut import = tessera(to.path());
    pg(&mut import);
    let out = import.arg("import").arg(&file).output().expect("import");
    assert!(out.status.success(), "{out:?}");
    let mut again = tessera(to.path());
    pg(&mut again);
    let out = again
        .arg("import")
        .arg(&file)
        .output()
        .expect("import again");
    assert!(
        out.status.success(),
        "an interrupted import can run again: {out:?}"
    );

    let server = common::serve_with(to.path(), &[("TESSERA_DATABASE_URL", schema.url())]);
    for tokens in &live {
        assert_eq!(
            verify(&server.addr, tokens["access_token"].as_str().expect("at")).await,
            200
        );
        let (status, _) = post(
            &server.addr,
            "/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": tokens["refresh_token"] }),
        )
        .await;
        assert_eq!(status, 200, "every session refreshes on the new store");
    }
    for tokens in [&logged_out, &bobs] {
        assert_eq!(
            verify(&server.addr, tokens["access_token"].as_str().expect("at")).await,
            401,
            "revoked stays revoked"
        );
        let (status, _) = post(
            &server.addr,
            "/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": tokens["refresh_token"] }),
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, _) = post(
        &server.addr,
        "/v1/auth/login",
        &serde_json::json!({ "username": "bob", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 401, "bob stays blocked");
    let (status, _) = post(
        &server.addr,
        "/v1/auth/login",
        &serde_json::json!({ "username": "alice", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 200, "password hashes came along");
}
