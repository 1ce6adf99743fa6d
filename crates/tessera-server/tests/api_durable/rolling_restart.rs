//! A rolling restart of two instances on one PostgreSQL under load loses no request: each
//! instance drains (`shutdown_delay`: still serving, `/readyz` 503), stops accepting, finishes
//! what it accepted, and comes back while the other serves. The clients go through a minimal
//! balancer that, like any load balancer, health-checks `/readyz` and sends new requests to ready
//! instances, and sends a request whose connection was refused to the other instance. Nothing
//! else is retried: a request cut off after it reached an instance (what an abrupt stop does)
//! counts as lost. Connections are not reused, so the test does not depend on the race every
//! keep-alive client has with a server closing an idle connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tessera_test_support::{spawn_app_on, Backend, PASSWORD};

/// The instances' current addresses, and whether their last health check said ready.
type Upstreams = Arc<RwLock<Vec<(String, bool)>>>;

/// The balancer's health checks: `/readyz` of every upstream every 20 ms.
fn health_checks(upstreams: Upstreams, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        while !stop.load(Ordering::Relaxed) {
            let bases: Vec<String> = upstreams
                .read()
                .expect("upstreams")
                .iter()
                .map(|(b, _)| b.clone())
                .collect();
            for (i, base) in bases.iter().enumerate() {
                let ready = http
                    .get(format!("{base}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
                let mut list = upstreams.write().expect("upstreams");
                if list[i].0 == *base {
                    list[i].1 = ready;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Sends a request built by `build` to a ready upstream (round robin from `start`), then to the
/// next one if its connection was refused.
async fn balanced(
    upstreams: &Upstreams,
    start: usize,
    build: impl Fn(&str) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let list = upstreams.read().expect("upstreams").clone();
    let mut bases: Vec<String> = (0..list.len())
        .map(|i| &list[(start + i) % list.len()])
        .filter(|(_, ready)| *ready)
        .chain(list.iter().filter(|(_, ready)| !*ready))
        .map(|(base, _)| base.clone())
        .collect();
    bases.dedup();
    let mut last = String::new();
    for base in &bases {
        match build(base).send().await {
            Ok(response) => return Ok(response),
            // Refused: the instance is not accepting; the request never reached it.
            Err(e) if e.is_connect() => last = format!("{e:?}"),
            Err(e) => return Err(format!("cut off after reaching an instance: {e:?}")),
        }
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_instances_under_load_loses_no_request() {
    let drain = Duration::from_millis(300);
    // Each client refreshes as fast as it can: no per-session rate limit here.
    let mut a = spawn_app_on(Backend::Postgres, |s| {
        s.shutdown_delay = drain;
        s.refresh_rate_limit = 0;
    })
    .await;
    let url = a.settings.database_url.clone();
    let mut b = a
        .second_instance(|s| {
            s.database_url = url;
            s.shutdown_delay = drain;
            s.refresh_rate_limit = 0;
        })
        .await;
    let upstreams: Upstreams = Arc::new(RwLock::new(vec![
        (a.base.clone(), true),
        (b.base.clone(), true),
    ]));
    a.sign_up("alice", PASSWORD).await;

    let stop = Arc::new(AtomicBool::new(false));
    let checks = health_checks(Arc::clone(&upstreams), Arc::clone(&stop));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for n in 0..4 {
        let tokens = a.login("alice").await;
        let (upstreams, stop, ok, failures) = (
            Arc::clone(&upstreams),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failures),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            let (mut access, mut refresh) = (tokens.access, tokens.refresh);
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let verify = balanced(&upstreams, i, |base| {
                    http.get(format!("{base}/v1/auth/verify"))
                        .bearer_auth(&access)
                })
                .await;
                let refreshed = balanced(&upstreams, i + 1, |base| {
                    http.post(format!("{base}/v1/auth/refresh"))
                        .json(&json!({ "refresh_token": refresh }))
                })
                .await;
                for (what, result) in [("verify", verify), ("refresh", refreshed)] {
                    match result {
                        Ok(r) if r.status() == StatusCode::OK => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if what == "refresh" {
                                let body: serde_json::Value = r.json().await.expect("json");
                                access = body["access_token"].as_str().expect("at").to_owned();
                                refresh = body["refresh_token"].as_str().expect("rt").to_owned();
                            }
                        }
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            failures
                                .lock()
                                .expect("failures")
                                .push(format!("{what}: {status} {text}"));
                        }
                        Err(e) => failures
                            .lock()
                            .expect("failures")
                            .push(format!("{what}: no answer from any instance: {e}")),
                    }
                }
            }
        }));
    }

    // Each instance in turn: stop gracefully, start again (on a new port), while the other serves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ok.load(Ordering::Relaxed);
    a.restart().await;
    upstreams.write().expect("upstreams")[0] = (a.base.clone(), false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.restart().await;
    upstreams.write().expect("upstreams")[1] = (b.base.clone(), false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    checks.await.expect("health checks");

    let failures = failures.lock().expect("failures");
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    let total = ok.load(Ordering::Relaxed);
    assert!(
        total > before && before > 0,
        "traffic flowed before, during and after ({before} then {total})"
    );
}
