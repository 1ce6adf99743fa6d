//! Crash safety on PostgreSQL: `tessera serve` (the process, not the database) is killed with
//! SIGKILL again and again while clients refresh and log out. After every restart, each client's newest acknowledged refresh
//! token still works, the store holds the rotation the client was told about (or the one
//! after it, still unanswered when the process died), and every acknowledged logout holds.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{serve_with, Server};
use serde_json::{json, Value};
use tessera_core::refresh::RefreshToken;
use tessera_test_servers::PgSchema;
use tokio::sync::Mutex;

const CLIENTS: usize = 8;
const CRASHES: usize = 5;
const PASSWORD: &str = "correct horse battery staple";

/// What one client holds: its newest acknowledged tokens (none right after a logout), the
/// tokens of its acknowledged logouts, and whether a logout was unanswered when the process
/// died (it may or may not have happened).
#[derive(Debug, Clone, Default)]
struct Held {
    tokens: Option<(String, String)>,
    logged_out: Vec<(String, String)>,
    logout_unanswered: bool,
}

fn start(dir: &std::path::Path, schema: &PgSchema) -> Server {
    serve_with(
        dir,
        &[
            ("TESSERA_DATABASE_URL", schema.url()),
            // A rotation in flight when the process dies is recovered by a grace retry.
            ("TESSERA_REFRESH_GRACE", "60s".into()),
        ],
    )
}

async fn call(
    client: &reqwest::Client,
    addr: &str,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = client.post(format!("http://{addr}{path}")).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn pair(body: &Value) -> (String, String) {
    (
        body["refresh_token"].as_str().expect("rt").to_owned(),
        body["access_token"].as_str().expect("at").to_owned(),
    )
}

async fn login(
    client: &reqwest::Client,
    addr: &str,
    user: &str,
) -> Result<(String, String), reqwest::Error> {
    let (status, body) = call(
        client,
        addr,
        "/v1/auth/login",
        None,
        json!({ "username": user, "password": PASSWORD }),
    )
    .await?;
    assert_eq!(status, 200, "login: {body}");
    Ok(pair(&body))
}

/// Refreshes in a chain until the server dies; every 7th step logs out and logs in again.
/// Returns when a request gets no answer (the process was killed).
async fn load(addr: String, user: String, held: Arc<Mutex<Held>>) {
    let client = reqwest::Client::new();
    for step in 0usize.. {
        let current = held.lock().await.tokens.clone();
        let Some((refresh, access)) = current else {
            match login(&client, &addr, &user).await {
                Ok(tokens) => held.lock().await.tokens = Some(tokens),
                Err(_) => return,
            }
            continue;
        };
        if step % 7 == 6 {
            held.lock().await.logout_unanswered = true;
            match call(&client, &addr, "/v1/auth/logout", Some(&access), json!({})).await {
                Ok((200, _)) => {
                    let mut h = held.lock().await;
                    h.logout_unanswered = false;
                    h.tokens = None;
                    h.logged_out.push((refresh, access));
                }
                Ok((status, body)) => panic!("logout answered {status}: {body}"),
                Err(_) => return,
            }
            continue;
        }
        let body = json!({ "refresh_token": refresh });
        match call(&client, &addr, "/v1/auth/refresh", None, body).await {
            Ok((200, body)) => held.lock().await.tokens = Some(pair(&body)),
            Ok((status, body)) => panic!("refresh answered {status}: {body}"),
            Err(_) => return, // the server died mid-request: the answer never came
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_process_loses_no_acknowledged_rotation_or_logout() {
    let dir = tempfile::tempdir().expect("tmp");
    let schema = PgSchema::create();
    let mut server = start(dir.path(), &schema);
    let client = reqwest::Client::new();
    let mut holders = Vec::new();
    for i in 0..CLIENTS {
        let user = format!("user{i}");
        let body = json!({ "username": user, "password": PASSWORD });
        let (status, _) = call(&client, &server.addr, "/v1/users", None, body)
            .await
            .expect("sign up");
        assert_eq!(status, 201);
        holders.push((user, Arc::new(Mutex::new(Held::default()))));
    }

    let (mut rotations_checked, mut logouts_checked) = (0, 0);
    for crash in 0..CRASHES {
        let tasks: Vec<_> = holders
            .iter()
            .map(|(user, held)| tokio::spawn(load(server.addr.clone(), user.clone(), held.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + 150 * crash as u64)).await;
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
        for t in tasks {
            t.await.expect("a client saw a wrong answer");
        }
        drop(server);
        server = start(dir.path(), &schema);

        for (user, held) in &holders {
            let mut h = held.lock().await;
            for (refresh, access) in &h.logged_out {
                let body = json!({ "refresh_token": refresh });
                let (status, body) = call(&client, &server.addr, "/v1/auth/refresh", None, body)
                    .await
                    .expect("refresh");
                assert_eq!(
                    status, 400,
                    "crash {crash}, {user}: a logged-out session refreshed: {body}"
                );
                let verify = client
                    .get(format!("http://{}/v1/auth/verify", server.addr))
                    .bearer_auth(access)
                    .send()
                    .await
                    .expect("verify");
                assert_eq!(
                    verify.status().as_u16(),
                    401,
                    "crash {crash}, {user}: logout lost"
                );
                logouts_checked += 1;
            }
            h.logged_out.clear();
            let Some((parent, _)) = h.tokens.clone() else {
                continue;
            };
            if std::mem::take(&mut h.logout_unanswered) {
                // The logout may have committed before the process died: either answer is
                // right, as long as it is one of the two.
                let body = json!({ "refresh_token": parent });
                let (status, body) = call(&client, &server.addr, "/v1/auth/refresh", None, body)
                    .await
                    .expect("refresh");
                match status {
                    200 => h.tokens = Some(pair(&body)),
                    400 if body["reason"] == "session_revoked" => h.tokens = None,
                    _ => {
                        panic!("crash {crash}, {user}: after an unanswered logout: {status} {body}")
                    }
                }
                continue;
            }
            // The store holds the acknowledged generation, or the one after it if a rotation
            // was committed but its answer lost with the process.
            let token = RefreshToken::parse(&parent).expect("our token");
            let stored: u64 = schema
                .psql(&format!(
                    "select generation from sessions where id = '{}'",
                    token.sid
                ))
                .expect("psql")
                .parse()
                .expect("a generation");
            assert!(
                stored == token.generation || stored == token.generation + 1,
                "crash {crash}, {user}: the client holds generation {}, the store {stored}",
                token.generation
            );
            // The newest acknowledged token works; presented twice, it gives the same child
            // both times: a parent never has two live successors.
            let mut children = Vec::new();
            for _ in 0..2 {
                let body = json!({ "refresh_token": parent });
                let (status, body) = call(&client, &server.addr, "/v1/auth/refresh", None, body)
                    .await
                    .expect("refresh after restart");
                assert_eq!(status, 200, "crash {crash}, {user}: {body}");
                children.push(pair(&body));
            }
            assert_eq!(
                children[0].0, children[1].0,
                "crash {crash}, {user}: two successors"
            );
            h.tokens = Some(children.swap_remove(0));
            rotations_checked += 1;
        }
    }
    assert!(rotations_checked >= CLIENTS, "rotations were checked");
    assert!(
        logouts_checked > 0,
        "the load logged out and that was checked"
    );
}
