//! The API flows on Tiered: PostgreSQL as the source of truth, the local Redis in front.

spawn_on!(tessera_test_support::Backend::Tiered);

#[path = "../api/admin.rs"]
mod admin;
#[path = "../api/flows.rs"]
mod flows;
#[path = "../api/refresh.rs"]
mod refresh;
