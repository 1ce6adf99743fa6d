//! Row ↔ type mapping and error mapping for the SQLite backend.

use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;
use tessera_core::ids::{SessionId, TokenId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{ClientInfo, RevokeReason, Session, SessionRevocation};
use tessera_core::Timestamp;

use crate::{StoreError, User};

pub(super) const USER_COLUMNS: &str =
    "id, username, password_hash, roles, blocked, cutoff_at, created_at";

pub(super) const SESSION_COLUMNS: &str = "id, user_id, nonce, key_id, generation, created_at, rotated_at, \
     last_used_at, idle_expires_at, absolute_expires_at, expires_at, revoked_at, revoke_reason, client_id, \
     user_agent, ip";

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

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}").into())
}

pub(super) fn parse_sid(text: &str) -> Result<SessionId, StoreError> {
    text.parse().map_err(|_| corrupt("session id"))
}

pub(super) fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id").map_err(map_err)?;
    let roles: String = row.try_get("roles").map_err(map_err)?;
    Ok(User {
        id: id.parse::<UserId>().map_err(|_| corrupt("user id"))?,
        username: row.try_get("username").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        roles: serde_json::from_str(&roles).map_err(|_| corrupt("roles"))?,
        blocked: row.try_get("blocked").map_err(map_err)?,
        cutoff: row
            .try_get::<Option<i64>, _>("cutoff_at")
            .map_err(map_err)?
            .map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(map_err)?),
    })
}

pub(super) fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    let ts = |name: &str| {
        row.try_get::<i64, _>(name)
            .map(Timestamp::from_millis)
            .map_err(map_err)
    };
    let id: String = row.try_get("id").map_err(map_err)?;
    let user_id: String = row.try_get("user_id").map_err(map_err)?;
    let nonce: Vec<u8> = row.try_get("nonce").map_err(map_err)?;
    let generation: i64 = row.try_get("generation").map_err(map_err)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(map_err)?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(map_err)?;
    let revoked = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some(SessionRevocation {
            at: Timestamp::from_millis(at),
            reason: RevokeReason::parse(&reason).ok_or_else(|| corrupt("revoke reason"))?,
        }),
        (None, None) => None,
        _ => return Err(corrupt("revocation")),
    };
    Ok(Session {
        id: parse_sid(&id)?,
        user_id: user_id.parse().map_err(|_| corrupt("user id"))?,
        nonce: nonce.try_into().map_err(|_| corrupt("nonce"))?,
        key_id: row.try_get("key_id").map_err(map_err)?,
        generation: u64::try_from(generation).map_err(|_| corrupt("generation"))?,
        created_at: ts("created_at")?,
        rotated_at: ts("rotated_at")?,
        last_used_at: ts("last_used_at")?,
        idle_expires_at: ts("idle_expires_at")?,
        absolute_expires_at: ts("absolute_expires_at")?,
        revoked,
        client: ClientInfo {
            client_id: row.try_get("client_id").map_err(map_err)?,
            user_agent: row.try_get("user_agent").map_err(map_err)?,
            ip: row.try_get("ip").map_err(map_err)?,
        },
    })
}

/// The columns (kind, subject, at, until) of a revocation entry.
pub(super) fn entry_row(entry: &RevocationEntry) -> (&'static str, String, i64, i64) {
    match entry {
        RevocationEntry::DeniedToken { jti, until } => (
            "denied_token",
            jti.to_string(),
            until.as_millis(),
            until.as_millis(),
        ),
        RevocationEntry::RevokedSession { sid, at, until } => (
            "revoked_session",
            sid.to_string(),
            at.as_millis(),
            until.as_millis(),
        ),
        RevocationEntry::UserCutoff { sub, at, until } => (
            "user_cutoff",
            sub.clone(),
            at.as_millis(),
            until.as_millis(),
        ),
    }
}

pub(super) fn entry_from_row(row: &SqliteRow) -> Result<RevocationEntry, StoreError> {
    let kind: String = row.try_get("kind").map_err(map_err)?;
    let subject: String = row.try_get("subject").map_err(map_err)?;
    let at = Timestamp::from_millis(row.try_get("at").map_err(map_err)?);
    let until = Timestamp::from_millis(row.try_get("until").map_err(map_err)?);
    Ok(match kind.as_str() {
        "denied_token" => RevocationEntry::DeniedToken {
            jti: subject.parse::<TokenId>().map_err(|_| corrupt("jti"))?,
            until,
        },
        "revoked_session" => RevocationEntry::RevokedSession {
            sid: parse_sid(&subject)?,
            at,
            until,
        },
        "user_cutoff" => RevocationEntry::UserCutoff {
            sub: subject,
            at,
            until,
        },
        _ => return Err(corrupt("revocation kind")),
    })
}
