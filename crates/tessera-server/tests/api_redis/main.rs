//! The API flows again, with sessions and revocations in Redis (the local server,
//! `TESSERA_TEST_REDIS_URL`), each test under its own key prefix; plus Redis fault tests against
//! private Redis servers this binary starts. Without a reachable Redis these tests FAIL.

#[path = "../api/admin.rs"]
mod admin;
#[path = "../api/bad_input.rs"]
mod bad_input;
mod bus;
mod faults;
#[path = "../api/flows.rs"]
mod flows;
#[path = "../api/forged.rs"]
mod forged;
#[path = "../api/refresh.rs"]
mod refresh;

use tessera_server::Settings;
use tessera_test_support::{use_redis, TestApp};

/// A Tessera with sessions in Redis.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A Tessera with sessions in Redis, with changed settings.
pub(crate) async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    tessera_test_support::spawn_app_with(|s| {
        use_redis(s);
        configure(s);
    })
    .await
}
