//! Redis faults, each against a private redis-server this test starts (never the shared one):
//! down, killed, paused, MISCONF, OOM, an evicting policy. Expected: 503 with `Retry-After`
//! within a bounded time, never a 200 for a write that did not happen, never counted as reuse,
//! recovery without a restart, and `readyz` telling the truth.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tessera_server::Application;
use tessera_test_servers::RedisServer;
use tessera_test_support::{json_body, test_settings, use_redis, TestApp};

async fn app_on(server: &RedisServer) -> TestApp {
    let url = server.url();
    tessera_test_support::spawn_app_with(|s| {
        use_redis(s);
        s.redis_url = url;
        s.redis_timeout = Duration::from_millis(300);
    })
    .await
}

async fn status_within(app: &TestApp, path: &str, want: StatusCode, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if app
            .request(Method::GET, path)
            .send()
            .await
            .is_ok_and(|r| r.status() == want)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn verify_within(app: &TestApp, token: &str, want: StatusCode, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if app.verify(token).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn assert_503(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(r.headers()["retry-after"], "1", "{what}");
    assert_eq!(
        json_body(r).await["error"],
        "temporarily_unavailable",
        "{what}"
    );
}

#[tokio::test]
async fn a_killed_redis_answers_503_fails_closed_and_recovers() {
    let mut redis = RedisServer::start(&[]);
    let app = app_on(&redis).await;
    let t = app.user("alice").await;
    let other = app.login("alice").await;

    redis.kill();
    let started = Instant::now();
    assert_503(app.refresh_raw(&t.refresh).await, "refresh").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded: {:?}",
        started.elapsed()
    );
    assert_503(
        app.login_raw("alice", tessera_test_support::PASSWORD).await,
        "login",
    )
    .await;
    assert_503(
        app.logout(&other.access, "session").await,
        "logout is never a 200 that did not happen",
    )
    .await;
    // Verification fails closed once the revocation state cannot be refreshed.
    assert!(
        verify_within(
            &app,
            &t.access,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(6)
        )
        .await
    );
    assert!(
        status_within(
            &app,
            "/readyz",
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(1)
        )
        .await
    );

    // Back, but empty (no persistence): the service recovers by itself; sessions kept only in
    // that Redis are gone (users log in again), which is what the tiered mode is for.
    redis.restart();
    assert!(
        status_within(&app, "/readyz", StatusCode::OK, Duration::from_secs(10)).await,
        "recovers"
    );
    assert_eq!(
        app.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    let again = app.login("alice").await;
    assert_eq!(app.verify(&again.access).await, StatusCode::OK);
    assert_eq!(
        app.refresh_raw(&again.refresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_paused_redis_answers_503_within_the_timeout_and_nothing_is_lost() {
    let redis = RedisServer::start(&[]);
    let app = app_on(&redis).await;
    let t = app.user("alice").await;
    redis
        .cli(&["CLIENT", "PAUSE", "2000", "WRITE"])
        .expect("pause");
    let started = Instant::now();
    assert_503(app.refresh_raw(&t.refresh).await, "refresh while paused").await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the bounded timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(app.verify(&t.access).await, StatusCode::OK, "reads go on");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // The paused rotation may have run once the pause ended: the retry gets the same child
    // (grace retry), or rotates; it is never taken for reuse.
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let outcome = r.headers()["tessera-refresh-outcome"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        outcome == "rotated" || outcome == "grace_retry",
        "{outcome}"
    );
}

#[tokio::test]
async fn misconf_refuses_writes_keeps_reads_and_recovers() {
    let redis = RedisServer::start(&["--save", "3600 1"]);
    let app = app_on(&redis).await;
    let t = app.user("alice").await;
    let other = app.login("alice").await;

    // Seed 000's failure: a background save that dies makes Redis refuse every write.
    redis
        .cli(&["CONFIG", "SET", "rdb-key-save-delay", "1000000"])
        .expect("slow save");
    redis.cli(&["BGSAVE"]).expect("bgsave");
    let child = wait_for_child(redis.pid());
    assert!(Command::new("kill")
        .args(["-9", &child.to_string()])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis
        .cli(&["INFO", "persistence"])
        .is_ok_and(|i| i.contains("rdb_last_bgsave_status:err"))
    {
        assert!(Instant::now() < deadline, "the save did not fail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        redis
            .cli(&["SET", "probe", "1"])
            .is_err_and(|e| e.contains("MISCONF")),
        "writes are refused"
    );

    assert_503(app.refresh_raw(&t.refresh).await, "refresh under MISCONF").await;
    assert_503(
        app.logout(&other.access, "session").await,
        "logout under MISCONF",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "verification keeps working"
    );
    assert_eq!(
        app.request(Method::GET, "/readyz")
            .send()
            .await
            .expect("readyz")
            .status(),
        StatusCode::OK
    );

    // One good save clears it; the same refresh token still rotates: nothing was consumed.
    redis
        .cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"])
        .expect("fast save");
    redis.cli(&["BGSAVE"]).expect("bgsave");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis
        .cli(&["INFO", "persistence"])
        .is_ok_and(|i| i.contains("rdb_last_bgsave_status:ok"))
    {
        assert!(Instant::now() < deadline, "the save did not succeed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");
    assert_eq!(
        app.logout(&other.access, "session").await.status(),
        StatusCode::OK
    );
    assert_eq!(app.verify(&other.access).await, StatusCode::UNAUTHORIZED);
}

fn wait_for_child(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .expect("pgrep");
        if let Some(pid) = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no save child appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn out_of_memory_with_noeviction_answers_503_and_recovers() {
    let redis = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let app = app_on(&redis).await;
    let t = app.user("alice").await;
    // 8 MB of junk, then a 4 MB limit: memory is well over it and every write is refused.
    let fill = "for i = 1, 8000 do redis.call('SET', 'junk:' .. i, string.rep('x', 1000)) end";
    redis.cli(&["EVAL", fill, "0"]).expect("fill");
    redis
        .cli(&["CONFIG", "SET", "maxmemory", "4mb"])
        .expect("limit");
    assert!(
        redis
            .cli(&["SET", "probe", "1"])
            .is_err_and(|e| e.contains("OOM")),
        "writes are refused"
    );

    assert_503(app.refresh_raw(&t.refresh).await, "refresh under OOM").await;
    assert_503(
        app.login_raw("alice", tessera_test_support::PASSWORD).await,
        "login under OOM",
    )
    .await;

    let drop_junk = "for i = 1, 8000 do redis.call('DEL', 'junk:' .. i) end";
    redis
        .cli(&["CONFIG", "SET", "maxmemory", "0"])
        .expect("lift the limit");
    redis.cli(&["EVAL", drop_junk, "0"]).expect("drop the junk");
    redis
        .cli(&["CONFIG", "SET", "maxmemory", "4mb"])
        .expect("limit again, now with room");
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK, "recovered");
    assert_eq!(
        r.headers()["tessera-refresh-outcome"],
        "rotated",
        "nothing was consumed by the failures"
    );
}

#[tokio::test]
async fn an_evicting_policy_is_refused_unless_accepted() {
    let redis = RedisServer::start(&["--maxmemory-policy", "volatile-ttl"]);
    let dir = tempfile::tempdir().expect("tmp");
    let mut settings = test_settings(dir.path());
    use_redis(&mut settings);
    settings.redis_url = redis.url();
    let err = Application::build(settings.clone())
        .await
        .expect_err("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("maxmemory-policy") && text.contains("volatile-ttl"),
        "{text}"
    );
    settings.redis_accept_eviction = true;
    assert!(
        Application::build(settings).await.is_ok(),
        "runs when told to accept it"
    );
}

#[tokio::test]
async fn redis_down_at_start_is_not_ready_until_it_comes() {
    let mut redis = RedisServer::start(&[]);
    redis.kill();
    let app = app_on(&redis).await;
    assert!(
        status_within(
            &app,
            "/readyz",
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(1)
        )
        .await
    );
    assert_eq!(
        app.sign_up("alice", tessera_test_support::PASSWORD)
            .await
            .status(),
        StatusCode::CREATED,
        "users live in SQL"
    );
    assert_503(
        app.login_raw("alice", tessera_test_support::PASSWORD).await,
        "a login needs the session store",
    )
    .await;
    redis.restart();
    assert!(
        status_within(&app, "/readyz", StatusCode::OK, Duration::from_secs(10)).await,
        "ready once redis answers"
    );
    let t = app.login("alice").await;
    assert_eq!(app.verify(&t.access).await, StatusCode::OK);
}

#[tokio::test]
async fn flushed_scripts_are_reloaded() {
    let redis = RedisServer::start(&[]);
    let app = app_on(&redis).await;
    let t = app.user("alice").await;
    redis
        .cli(&["SCRIPT", "FLUSH"])
        .expect("flush the script cache");
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "EVALSHA answered NOSCRIPT and the script was loaded again"
    );
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");
}
