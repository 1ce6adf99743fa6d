//! The API flows on PostgreSQL: users and sessions in a schema of the test's own.

spawn_on!(tessera_test_support::Backend::Postgres);

#[path = "../api/admin.rs"]
mod admin;
#[path = "../api/flows.rs"]
mod flows;
#[path = "../api/refresh.rs"]
mod refresh;
