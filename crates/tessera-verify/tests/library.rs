//! `tessera-verify` against a real running Tessera: tokens accepted locally, every kind of
//! revocation honoured within a bound, the feed cut and restored, Tessera restarted, the stale
//! modes, and the tower layer with its extractor over real HTTP.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tessera_test_servers::TcpProxy;
use tessera_test_support::{spawn_app, TestApp, VERIFIER_KEY};
use tessera_verify::{Config, Verifier, VerifyError, WhenStale};

/// Generous: the bound asserted in tests; the measured figures are in BENCHMARKS.md.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

fn config(app: &TestApp, url: &str) -> Config {
    Config::new(
        url,
        VERIFIER_KEY,
        app.settings.issuer(),
        app.settings.audience.clone(),
    )
}

async fn started(config: Config) -> Verifier {
    let verifier = Verifier::start(config).expect("starts");
    assert!(
        verifier.ready(Duration::from_secs(10)).await,
        "loads keys and revocations"
    );
    verifier
}

/// Polls the verifier (no I/O per check) until it refuses `token`; the time it took.
async fn refused_after(verifier: &Verifier, token: &str, limit: Duration) -> Option<Duration> {
    let (verifier, token) = (verifier.clone(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while started.elapsed() < limit {
            if matches!(verifier.verify_local(&token), Err(VerifyError::Revoked(_))) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        None
    })
    .await
    .expect("poller")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_revocation_reaches_the_verifier_within_the_bound() {
    let app = spawn_app().await;
    let verifier = started(config(&app, &app.base)).await;
    let mut times = Vec::new();

    // Logout of one session.
    let t = app.user("alice").await;
    let claims = verifier.verify(&t.access).await.expect("a valid token");
    assert_eq!(claims.sub, t.user_id);
    // More samples for BENCHMARKS.md: TESSERA_REVOCATION_SAMPLES=500.
    let samples: usize = std::env::var("TESSERA_REVOCATION_SAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    for _ in 0..samples {
        let t = app.login("alice").await;
        verifier.verify(&t.access).await.expect("valid");
        assert_eq!(
            app.logout(&t.access, "session").await.status(),
            StatusCode::OK
        );
        times.push(
            refused_after(&verifier, &t.access, REFUSED_WITHIN)
                .await
                .expect("logout honoured"),
        );
    }

    // Reuse detection: an old refresh token replayed kills the session's access tokens.
    let t = app.user("bob").await;
    let t2 = app.refresh(&t.refresh).await;
    let t3 = app.refresh(&t2.refresh).await;
    verifier.verify(&t3.access).await.expect("valid");
    assert_eq!(
        app.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    times.push(
        refused_after(&verifier, &t3.access, REFUSED_WITHIN)
            .await
            .expect("reuse detection honoured"),
    );

    // Forced logout by an admin.
    let t = app.user("carol").await;
    verifier.verify(&t.access).await.expect("valid");
    let r = app
        .admin(Method::POST, "/v1/admin/users/carol/logout", None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    times.push(
        refused_after(&verifier, &t.access, REFUSED_WITHIN)
            .await
            .expect("forced logout honoured"),
    );

    // Blocking.
    let t = app.user("dave").await;
    verifier.verify(&t.access).await.expect("valid");
    let r = app
        .admin(Method::POST, "/v1/admin/users/dave/block", None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    times.push(
        refused_after(&verifier, &t.access, REFUSED_WITHIN)
            .await
            .expect("block honoured"),
    );
    assert!(matches!(
        verifier.verify(&t.access).await,
        Err(VerifyError::Revoked(Some(_)))
    ));

    times.sort();
    eprintln!(
        "revocation → verifier refusal over {} revocations: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_feed_fails_closed_then_reconnects_and_catches_up() {
    let app = spawn_app().await;
    let proxy = TcpProxy::start(app.addr());
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let mut cfg = config(&app, &url);
    cfg.max_staleness = Duration::from_millis(1500);
    let verifier = started(cfg).await;
    let doomed = app.user("alice").await;
    let alive = app.login("alice").await;
    verifier.verify(&doomed.access).await.expect("valid");
    let connections = verifier.status().connections;

    proxy.refuse();
    // A logout made while the verifier cannot hear about it.
    assert_eq!(
        app.logout(&doomed.access, "session").await.status(),
        StatusCode::OK
    );
    // Past the bound, the verifier no longer decides: it fails closed, even for live tokens.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        verifier.verify(&alive.access).await.err(),
        Some(VerifyError::Unavailable)
    );
    assert!(!verifier.status().fresh);

    proxy.restore();
    assert!(verifier.ready(Duration::from_secs(10)).await, "reconnects");
    assert!(verifier.status().connections > connections);
    assert!(
        matches!(
            verifier.verify(&doomed.access).await,
            Err(VerifyError::Revoked(_))
        ),
        "the logout made during the cut is caught up"
    );
    verifier
        .verify(&alive.access)
        .await
        .expect("live tokens pass again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_tessera_restarts_the_verifier_resyncs() {
    let mut app = spawn_app().await;
    let verifier = started(config(&app, &app.base)).await;
    let before = app.user("alice").await;
    assert_eq!(
        app.logout(&before.access, "session").await.status(),
        StatusCode::OK
    );
    let during = app.login("alice").await;
    refused_after(&verifier, &before.access, REFUSED_WITHIN)
        .await
        .expect("refused");

    app.restart_in_place().await;
    assert!(verifier.ready(Duration::from_secs(10)).await, "resyncs");
    assert!(matches!(
        verifier.verify(&before.access).await,
        Err(VerifyError::Revoked(_))
    ));
    verifier.verify(&during.access).await.expect("still live");
    assert_eq!(
        app.logout(&during.access, "session").await.status(),
        StatusCode::OK
    );
    refused_after(&verifier, &during.access, REFUSED_WITHIN)
        .await
        .expect("a logout after the restart reaches the verifier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_feed_it_fails_closed_or_asks_tessera_as_configured() {
    let app = spawn_app().await;
    let live = app.user("alice").await;
    let dead = app.login("alice").await;
    assert_eq!(
        app.logout(&dead.access, "session").await.status(),
        StatusCode::OK
    );

    // A wrong verifier key: the keys load, the revocation state never does.
    let mut cfg = config(&app, &app.base);
    cfg.verifier_key = "not-the-verifier-key-0123456789abcdef".into();
    let closed = Verifier::start(cfg.clone()).expect("starts");
    assert!(!closed.ready(Duration::from_millis(1500)).await);
    assert_eq!(
        closed.verify(&live.access).await.err(),
        Some(VerifyError::Unavailable)
    );
    assert!(
        matches!(closed.verify("garbage").await, Err(VerifyError::Invalid(_))),
        "an invalid token is invalid whatever the revocation state"
    );

    cfg.when_stale = WhenStale::AskTessera;
    let asking = Verifier::start(cfg).expect("starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while asking.status().keys == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claims = asking
        .verify(&live.access)
        .await
        .expect("Tessera says live");
    assert_eq!(claims.sub, live.user_id);
    assert_eq!(
        asking.verify(&dead.access).await.err(),
        Some(VerifyError::Revoked(None))
    );
    assert_eq!(
        asking.verify_local(&live.access).err(),
        Some(VerifyError::Unavailable),
        "the no-I/O check never asks"
    );
    // Tessera's clock says the token expired: the answer keeps saying so (refresh, then retry).
    app.clock.advance(Duration::from_secs(400));
    assert_eq!(
        asking.verify(&live.access).await.err(),
        Some(VerifyError::Invalid(
            tessera_core::access::TokenError::Expired
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_needs_the_verifier_key() {
    let app = spawn_app().await;
    for path in ["/v1/revocations", "/v1/revocations/stream"] {
        let none = app
            .request(Method::GET, path)
            .send()
            .await
            .expect("request");
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{path}");
        let wrong = app
            .get_bearer(path, "not-the-verifier-key-0123456789abcdef")
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let t = app.user("alice").await;
    let user_token = app.get_bearer("/v1/revocations", &t.access).await;
    assert_eq!(
        user_token.status(),
        StatusCode::UNAUTHORIZED,
        "a user is no verifier"
    );
    let ok = app.get_bearer("/v1/revocations", VERIFIER_KEY).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let bad_cursor = app
        .request(Method::GET, "/v1/revocations/stream?cursor=yesterday")
        .bearer_auth(VERIFIER_KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(bad_cursor.status(), StatusCode::BAD_REQUEST);
    // A Last-Event-ID that is no cursor of ours is no id: the stream starts from the beginning.
    let not_ours = app
        .request(Method::GET, "/v1/revocations/stream")
        .bearer_auth(VERIFIER_KEY)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .expect("request");
    assert_eq!(not_ours.status(), StatusCode::OK);
    let too_far = app
        .request(
            Method::GET,
            "/v1/revocations/stream?cursor=9223372036854775808",
        )
        .bearer_auth(VERIFIER_KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(too_far.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_from_a_cursor_with_what_followed_it() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let snapshot: serde_json::Value = app
        .get_bearer("/v1/revocations", VERIFIER_KEY)
        .await
        .json()
        .await
        .expect("json");
    let cursor = snapshot["cursor"].as_u64().expect("cursor");
    assert_eq!(
        app.logout(&t.access, "session").await.status(),
        StatusCode::OK
    );

    let mut stream = app
        .request(Method::GET, "/v1/revocations/stream")
        .bearer_auth(VERIFIER_KEY)
        .header("last-event-id", cursor.to_string())
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(text.contains("event: revocations") && text.contains(&t.session_id)) {
        assert!(Instant::now() < deadline, "the logout arrives: {text}");
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .expect("in time")
            .expect("read")
            .expect("open");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    assert!(text.contains("revoked_session"), "{text}");
}

mod layer {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tessera_verify::{Claims, RequireBearer};

    async fn resource_server(verifier: Verifier) -> (String, tokio::task::JoinHandle<()>) {
        let app = Router::new()
            .route(
                "/hello",
                get(|Claims(claims): Claims| async move { format!("hello {}", claims.sub) }),
            )
            .layer(RequireBearer::new(verifier.clone()))
            .route(
                "/open",
                get(|Claims(claims): Claims| async move { claims.sid.to_string() }),
            )
            .layer(axum::Extension(verifier));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        (url, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_layer_and_the_extractor_answer_as_rfc_6750_says() {
        let app = spawn_app().await;
        let verifier = started(config(&app, &app.base)).await;
        let (url, server) = resource_server(verifier.clone()).await;
        let http = reqwest::Client::new();
        let get = |path: &str, token: Option<&str>| {
            let mut req = http.get(format!("{url}{path}"));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            req.send()
        };

        let none = get("/hello", None).await.expect("request");
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(none.headers()["www-authenticate"], "Bearer");

        let bad = get("/hello", Some("not.a.token")).await.expect("request");
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
        let challenge = bad.headers()["www-authenticate"].to_str().expect("text");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        let body: serde_json::Value = bad.json().await.expect("json");
        assert_eq!(body["error"], "invalid_token");

        let t = app.user("alice").await;
        let ok = get("/hello", Some(&t.access)).await.expect("request");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.text().await.expect("text"),
            format!("hello {}", t.user_id)
        );
        let open = get("/open", Some(&t.access)).await.expect("request");
        assert_eq!(open.text().await.expect("text"), t.session_id);

        assert_eq!(
            app.logout(&t.access, "session").await.status(),
            StatusCode::OK
        );
        refused_after(&verifier, &t.access, REFUSED_WITHIN)
            .await
            .expect("refused");
        for path in ["/hello", "/open"] {
            let gone = get(path, Some(&t.access)).await.expect("request");
            assert_eq!(gone.status(), StatusCode::UNAUTHORIZED, "{path}");
        }
        server.abort();
    }
}

mod hardening {
    use super::*;
    use base64::Engine as _;

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// A token whose header names `kid` and whose signature is garbage.
    fn with_kid(kid: &str) -> String {
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
        format!(
            "{}.{}.{}",
            b64(&header),
            b64(&serde_json::json!({})),
            "A".repeat(86)
        )
    }

    async fn jwks_requests(app: &TestApp) -> f64 {
        let text = app
            .request(Method::GET, "/metrics")
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with("tessera_http_requests_total") && l.contains("jwks.json"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_tokens_and_made_up_key_ids_are_refused_without_hammering_tessera() {
        let app = spawn_app().await;
        let verifier = started(config(&app, &app.base)).await;
        let t = app.user("alice").await;
        let mut tampered = t.access.clone();
        let last = tampered.pop().expect("a char");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            verifier.verify(&tampered).await,
            Err(VerifyError::Invalid(_))
        ));
        let before = jwks_requests(&app).await;
        for i in 0..50 {
            assert!(matches!(
                verifier.verify(&with_kid(&format!("made-up-{i}"))).await,
                Err(VerifyError::Invalid(_))
            ));
        }
        let fetched = jwks_requests(&app).await - before;
        assert!(
            fetched <= 1.0,
            "at most one refetch per 10 s, got {fetched}"
        );
        verifier
            .verify(&t.access)
            .await
            .expect("real tokens still pass");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_leeway_never_exceeds_tesseras_and_the_key_never_shows_in_debug() {
        let app = tessera_test_support::spawn_app_with(|s| s.leeway = Duration::from_secs(5)).await;
        let verifier = started(config(&app, &app.base)).await;
        assert_eq!(
            verifier.status().leeway,
            Duration::from_secs(5),
            "entries are kept 5 s past exp: the verifier may not accept longer"
        );
        let shown = format!("{verifier:?} {:?}", config(&app, &app.base));
        assert!(!shown.contains(VERIFIER_KEY), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn before_anything_loaded_tokens_are_unavailable_not_invalid() {
        let app = spawn_app().await;
        let t = app.user("alice").await;
        // Nothing listens there: no keys, no feed.
        let port = tessera_test_servers::free_port();
        let verifier =
            Verifier::start(config(&app, &format!("http://127.0.0.1:{port}"))).expect("start");
        assert!(!verifier.ready(Duration::from_millis(300)).await);
        assert_eq!(
            verifier.verify(&t.access).await.err(),
            Some(VerifyError::Unavailable),
            "a client must not throw its token away because the verifier just started"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_admin_key_reads_the_feed_too() {
        let app = spawn_app().await;
        let r = app
            .get_bearer("/v1/revocations", tessera_test_support::ADMIN_KEY)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["leeway_secs"], 30);
        assert_eq!(body["access_ttl_secs"], 300);
        let bad = app
            .request(Method::GET, "/v1/revocations/stream?cursor=minus-one")
            .bearer_auth(VERIFIER_KEY)
            .send()
            .await
            .expect("request");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = bad.json().await.expect("a JSON error");
        assert_eq!(body["error"], "invalid_request");
    }
}
