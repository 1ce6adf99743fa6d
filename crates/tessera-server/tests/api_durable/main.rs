//! The API flows again on the durable stores: PostgreSQL, MySQL/MariaDB, and tiered (PostgreSQL
//! as the source of truth, Redis in front). Each test gets a PostgreSQL schema or a MySQL
//! database of its own (and a Redis key prefix), dropped afterwards. Plus what only these stores
//! promise: losing the Redis cache loses nothing. Without the local PostgreSQL, MariaDB and
//! Redis these tests FAIL.

// The shared flow modules of tests/api run once per backend, each time as a module of its own.
#![allow(clippy::duplicate_mod)]

/// `spawn_app` and `spawn_app_with` on one backend, for the shared flow modules of `tests/api`.
macro_rules! spawn_on {
    ($backend:expr) => {
        pub(crate) async fn spawn_app() -> tessera_test_support::TestApp {
            tessera_test_support::spawn_app_on($backend, |_| {}).await
        }

        pub(crate) async fn spawn_app_with(
            configure: impl FnOnce(&mut tessera_server::Settings),
        ) -> tessera_test_support::TestApp {
            tessera_test_support::spawn_app_on($backend, configure).await
        }
    };
}

mod cache_loss;
mod instances;
mod mysql;
mod postgres;
mod rolling_restart;
mod sql_faults;
mod tiered;
mod tiered_stale;
