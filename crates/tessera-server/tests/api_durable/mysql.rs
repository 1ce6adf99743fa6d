//! The API flows on MySQL/MariaDB: users and sessions in a database of the test's own.

spawn_on!(tessera_test_support::Backend::MySql);

#[path = "../api/admin.rs"]
mod admin;
#[path = "../api/flows.rs"]
mod flows;
#[path = "../api/refresh.rs"]
mod refresh;
