//! Two Tessera instances on one PostgreSQL (sharing the schema and the keys, as a deployment
//! does): a revocation made on one is refused by the other. LISTEN/NOTIFY carries it at once
//! (the store test `an_append_notifies_other_instances` shows the bus alone; here the 250 ms
//! poll would also pass, so this test is about the whole path, not its speed).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tessera_test_support::{spawn_app_on, Backend, TestApp};

async fn pair() -> (TestApp, TestApp) {
    let a = spawn_app_on(Backend::Postgres, |_| {}).await;
    let url = a.settings.database_url.clone();
    let b = a.second_instance(|s| s.database_url = url).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_or_block_on_one_instance_is_refused_by_the_other() {
    let (a, b) = pair().await;
    let t = a.user("alice").await;
    assert_eq!(
        b.verify(&t.access).await,
        StatusCode::OK,
        "B verifies A's tokens"
    );
    assert_eq!(
        a.logout(&t.access, "session").await.status(),
        StatusCode::OK
    );
    assert!(
        b.refused_within(&t.access, Duration::from_secs(5))
            .await
            .is_some(),
        "B learns the logout"
    );
    assert_eq!(
        b.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );

    let t = a.login("alice").await;
    let blocked = b
        .admin(Method::POST, "/v1/admin/users/alice/block", None)
        .await;
    assert_eq!(blocked.status(), StatusCode::OK);
    assert!(a
        .refused_within(&t.access, Duration::from_secs(5))
        .await
        .is_some());
    assert_eq!(
        a.refresh_raw(&t.refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_guesses_spread_over_two_instances_count_as_one_stream() {
    let (a, b) = pair().await;
    a.user("alice").await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            app.login_raw("alice", "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for app in [&a, &b] {
        let r = app.login_raw("alice", tessera_test_support::PASSWORD).await;
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the sixth attempt waits on either instance"
        );
    }
    // The delay passes on B; its success resets the count for A too.
    b.clock.advance(Duration::from_secs(1));
    assert_eq!(
        b.login_raw("alice", tessera_test_support::PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        a.login_raw("alice", "guess").await.status(),
        StatusCode::UNAUTHORIZED
    );
}
