// Row <-> type mapping shared by every SQL backend (SQLite, PostgreSQL, MySQL), included with
// `include!` into a module that defines `Row` (the driver's row type) and `map_err` (its error
// mapping), and imports the types named here and `sqlx::Row`.

pub(super) const USER_COLUMNS: &str = "id, username, password_hash, roles, blocked, cutoff_at, created_at";

pub(super) const SESSION_COLUMNS: &str = "id, user_id, nonce, key_id, generation, created_at, rotated_at, \
     last_used_at, idle_expires_at, absolute_expires_at, expires_at, revoked_at, revoke_reason, \
     client_id, user_agent, ip";

pub(super) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}").into())
}

pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
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

pub(super) fn session_from_row(row: &Row) -> Result<Session, StoreError> {
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
        id: id.parse().map_err(|_| corrupt("session id"))?,
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

pub(super) fn entry_from_row(row: &Row) -> Result<RevocationEntry, StoreError> {
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
            sid: subject.parse().map_err(|_| corrupt("session id"))?,
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
