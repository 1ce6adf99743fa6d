//! Store faults: a 503 with `Retry-After`, never a verdict, and recovery without a restart.

use std::time::{Duration, Instant};

use super::spawn_app;
use reqwest::StatusCode;
use sqlx::{Connection as _, Executor as _, SqliteConnection};
use tessera_test_support::json_body;

#[tokio::test]
async fn a_locked_database_answers_503_changes_nothing_and_recovers() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let other = app.login("alice").await;

    // Another process holds SQLite's write lock for longer than the store's busy timeout.
    let url = format!("sqlite://{}", app.data_dir().join("tessera.db").display());
    let mut holder = SqliteConnection::connect(&url).await.expect("connect");
    holder.execute("begin immediate").await.expect("lock");

    let started = Instant::now();
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(json_body(r).await["error"], "temporarily_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded: {:?}",
        started.elapsed()
    );

    let logout = app.logout(&other.access, "session").await;
    assert_eq!(
        logout.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a logout that did not happen is never a 200"
    );
    assert_eq!(
        app.verify(&t.access).await,
        StatusCode::OK,
        "verification needs no store"
    );

    holder.execute("rollback").await.expect("unlock");
    drop(holder);

    // Nothing was consumed or revoked by the failed calls: the same refresh token rotates now.
    let r = app.refresh_raw(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["tessera-refresh-outcome"], "rotated");
    assert_eq!(app.verify(&other.access).await, StatusCode::OK);
    assert_eq!(
        app.logout(&other.access, "session").await.status(),
        StatusCode::OK
    );
    assert_eq!(app.verify(&other.access).await, StatusCode::UNAUTHORIZED);
}
