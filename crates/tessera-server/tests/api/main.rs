//! API tests: a real Tessera on a loopback port per test, driven over HTTP.

mod admin;
mod bad_input;
mod faults;
mod flows;
mod forged;
mod refresh;
mod restart;
