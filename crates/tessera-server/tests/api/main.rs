//! API tests: a real Tessera on a loopback port per test, driven over HTTP, on the embedded
//! SQLite store. `tests/api_redis` runs the same flows with sessions in Redis.

mod admin;
mod bad_input;
mod contract;
mod faults;
mod flows;
mod forged;
mod interop;
mod keys;
mod metrics;
mod nginx;
mod oauth;
mod oauth_property;
mod openapi;
mod refresh;
mod restart;

use tessera_server::Settings;
use tessera_test_support::TestApp;

/// A Tessera on the default (SQL) session store.
pub(crate) async fn spawn_app() -> TestApp {
    tessera_test_support::spawn_app().await
}

/// A Tessera on the default (SQL) session store, with changed settings.
pub(crate) async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    tessera_test_support::spawn_app_with(configure).await
}
