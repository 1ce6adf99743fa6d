//! Tiered mode with a cached copy that is behind the source of truth. Two instances share the
//! PostgreSQL schema and the keys but not the cache (each its own Redis key prefix), so rotations
//! made on B leave A's copy behind. A may decide a rotation on its copy (SQL's compare-and-set
//! confirms it), but every other verdict must come from SQL.

use std::time::Duration;

use reqwest::StatusCode;
use tessera_test_support::{json_body, spawn_app_on, Backend, TestApp};

async fn pair() -> (TestApp, TestApp) {
    let a = spawn_app_on(Backend::Tiered, |_| {}).await;
    let url = a.settings.database_url.clone();
    let b = a
        .second_instance(|s| {
            tessera_test_support::use_redis(s); // a prefix of its own: a cache A cannot see
            s.session_store = tessera_server::config::SessionStoreKind::Tiered;
            s.database_url = url;
        })
        .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_token_than_the_copy_rotates() {
    let (a, b) = pair().await;
    let t0 = a.user("alice").await; // A's copy: generation 0
    let t1 = b.refresh(&t0.refresh).await; // SQL: generation 1; A's copy still 0
    let r = a.refresh_raw(&t1.refresh).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "A takes SQL's word, not its copy's"
    );
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandparent_is_reuse_even_when_the_copy_says_grace() {
    let (a, b) = pair().await;
    let t0 = a.user("alice").await;
    let t1 = a.refresh(&t0.refresh).await; // A's copy: generation 1, rotated just now
    let t2 = b.refresh(&t1.refresh).await; // SQL: generation 2; A's copy still 1
                                           // On A's copy, t0 is the parent of the current generation inside the grace window: a grace
                                           // retry handing out t1 again, which is already used. SQL says t0 is two behind: reuse.
    let r = a.refresh_raw(&t0.refresh).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["tessera-refresh-outcome"], "reused");
    let body = json_body(r).await;
    assert_eq!(body["reason"], "refresh_token_reused");
    // The family is revoked: the newest token and its access token are dead everywhere.
    assert_eq!(
        b.refresh_raw(&t2.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut refused = false;
    for _ in 0..100 {
        if b.verify(&t2.access).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "B learns the revocation");
}
