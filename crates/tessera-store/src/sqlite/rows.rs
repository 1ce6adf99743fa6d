//! Row ↔ type mapping and error mapping for the SQLite backend.

use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;
use tessera_core::ids::{SessionId, TokenId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{ClientInfo, RevokeReason, Session, SessionRevocation};
use tessera_core::Timestamp;

use crate::{StoreError, User};

type Row = SqliteRow;

include!("../sql/rows.rs");

/// Maps a driver error: constraint violations are conflicts; anything that says "not now"
/// (pool timeout, I/O, busy/locked, disk full, read-only) is unavailability; the rest is backend.
pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("duplicate"),
        sqlx::Error::Database(db) => {
            // Primary result codes: BUSY 5, LOCKED 6, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(5 | 6 | 8 | 10 | 13 | 14) => StoreError::Unavailable(Box::new(e)),
                _ => StoreError::Backend(Box::new(e)),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        _ => StoreError::Backend(Box::new(e)),
    }
}

pub(super) fn parse_sid(text: &str) -> Result<SessionId, StoreError> {
    text.parse().map_err(|_| corrupt("session id"))
}
