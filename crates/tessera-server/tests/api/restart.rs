//! Durability across restarts, the data-directory lock, and revocations from other processes.

use std::sync::Arc;
use std::time::Duration;

use super::spawn_app;
use reqwest::StatusCode;
use tessera_core::SystemClock;
use tessera_server::datadir::{Access, DataDir};
use tessera_server::flows::users;
use tessera_server::state::AppState;
use tessera_server::stores::SqlDatabase;
use tessera_server::Application;
use tessera_test_support::TestApp;

#[tokio::test]
async fn sessions_keys_and_tokens_survive_a_restart() {
    let mut app = spawn_app().await;
    let alive = app.user("alice").await;
    let rotated = app.refresh(&alive.refresh).await;
    let gone = app.login("alice").await;
    assert_eq!(
        app.logout(&gone.access, "session").await.status(),
        StatusCode::OK
    );

    app.restart().await;

    assert_eq!(
        app.verify(&rotated.access).await,
        StatusCode::OK,
        "the signing key survived"
    );
    assert_eq!(
        app.verify(&gone.access).await,
        StatusCode::UNAUTHORIZED,
        "the revocation survived"
    );
    let next = app.refresh(&rotated.refresh).await;
    assert_eq!(app.verify(&next.access).await, StatusCode::OK);
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(
        app.refresh_raw(&alive.refresh).await.status(),
        StatusCode::BAD_REQUEST,
        "reuse is still detected"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let app = spawn_app().await;
    let err = Application::build(app.settings.clone())
        .await
        .expect_err("must refuse");
    let text = format!("{err:#}");
    assert!(
        text.contains("another Tessera process is already serving"),
        "{text}"
    );
}

/// The state an admin command (`tessera user …`) builds beside the running server.
async fn another_process(app: &TestApp) -> (AppState, SqlDatabase) {
    let dir = DataDir::open(&app.data_dir(), Access::Shared).expect("shared");
    tessera_server::build_state(app.settings.clone(), Arc::new(SystemClock), &dir)
        .await
        .expect("state")
}

/// What `tessera user block <name>` does, beside the running server.
async fn block_from_another_process(app: &TestApp, name: &str) {
    let (admin, store) = another_process(app).await;
    let user = users::resolve(&admin, name).await.expect("user");
    users::block(&admin, &user).await.expect("block");
    store.close().await;
}

#[tokio::test]
async fn a_block_by_another_process_reaches_the_running_server() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    block_from_another_process(&app, "alice").await;

    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = app.verify(&t.access).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED, "seen within two seconds");
    assert_eq!(
        app.login_raw("alice", tessera_test_support::PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_login_racing_a_block_issues_nothing() {
    let app = spawn_app().await;
    app.user("alice").await;
    let (state, store) = another_process(&app).await;
    // The login read the user before the block ran to its end…
    let stale = users::resolve(&state, "alice").await.expect("alice");
    users::block(&state, &stale).await.expect("block");
    // …so its session is revoked again and no token is issued.
    let issued =
        tessera_server::flows::login::start_session(&state, &stale, "tessera", &Default::default())
            .await
            .expect("no store error");
    assert!(issued.is_none());
    let alice = users::resolve(&state, "alice").await.expect("alice");
    assert!(state
        .sessions
        .live_sessions(&alice.id, state.now())
        .await
        .expect("live")
        .is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_block_by_another_process_stops_refresh_at_once_despite_the_user_cache() {
    let app = spawn_app().await;
    let t = app.user("alice").await;
    let next = app.refresh(&t.refresh).await; // the server now remembers alice's row for a second
    block_from_another_process(&app, "alice").await;
    // No waiting: the session itself was revoked in the store the refresh reads.
    assert_eq!(
        app.refresh_raw(&next.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}
