//! The token flows: what each API call does, over the stores and the token engine. Routes (and
//! the CLI) call these; they hold no HTTP types.

pub mod login;
pub mod logout;
pub mod refresh;
pub mod users;
