//! The Tessera service: configuration, the token flows over the stores, and the axum app.
//!
//! # Layout
//! - [`config`]: layered settings (defaults, `tessera.toml`, `TESSERA_*`, flags).
//! - [`datadir`]: the data directory, its lock, and the key file.
//! - [`doctor`]: the checks of `tessera doctor`; [`backup`]: backup and restore of the embedded
//!   store; [`transfer`]: export and import between stores.
//! - [`stores`]: opening the SQL database and the session store the settings name.
//! - [`app`]: building the state and router, running with graceful shutdown; [`serve`]: the
//!   HTTP/1.1 listener.
//! - [`state`]: shared state; issuing tokens; authenticating bearer tokens.
//! - [`flows`]: login, refresh, logout, user actions (what each call does).
//! - [`routes`]: the HTTP resources, one file each; `routes::oauth` is the OAuth 2.0 surface.
//! - [`clients`]: OAuth 2.0 clients and their authentication.
//! - [`revocations`]: this process's copy of the revocation state.
//! - [`passwords`]: argon2id on a bounded blocking pool.
//! - [`throttle`]: login throttling per account and per client address.
//! - [`users_cache`]: user rows reused for a second on the refresh path.
//! - [`error`], [`extract`], [`audit`], [`telemetry`], [`metrics`]: the edges.
#![warn(missing_docs)]

pub mod app;
pub mod audit;
pub mod backup;
pub mod clients;
pub mod config;
pub mod datadir;
pub mod doctor;
pub mod error;
pub mod extract;
pub mod flows;
pub mod keyring;
pub mod metered;
pub mod metrics;
pub mod passwords;
pub mod revocations;
pub mod routes;
pub mod serve;
pub mod state;
pub mod stores;
pub mod telemetry;
pub mod throttle;
pub mod transfer;
pub mod users_cache;

pub use app::{build_router, build_state, Application};
pub use config::Settings;
