//! Sessions: one login on one device. A session is the "token family" of its refresh tokens.

use std::fmt;
use std::time::Duration;

use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{SessionId, UserId};

/// Why a session was ended. The text forms are stable: they appear in the API and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out of this session.
    Logout,
    /// The user logged out of all sessions, or of all others.
    LogoutAll,
    /// An older refresh token was presented again: the family is compromised.
    ReuseDetected,
    /// An administrator ended the session.
    AdminRevoked,
    /// An administrator forced the user out of every session.
    ForcedLogout,
    /// The user was blocked.
    UserBlocked,
    /// The user was deleted.
    UserDeleted,
    /// The user opened more sessions than allowed; this was the oldest.
    SessionLimit,
}

impl RevokeReason {
    /// The stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::LogoutAll => "logout_all",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::AdminRevoked => "admin_revoked",
            RevokeReason::ForcedLogout => "forced_logout",
            RevokeReason::UserBlocked => "user_blocked",
            RevokeReason::UserDeleted => "user_deleted",
            RevokeReason::SessionLimit => "session_limit",
        }
    }

    /// Parses the stable text form.
    pub fn parse(text: &str) -> Option<Self> {
        [
            RevokeReason::Logout,
            RevokeReason::LogoutAll,
            RevokeReason::ReuseDetected,
            RevokeReason::AdminRevoked,
            RevokeReason::ForcedLogout,
            RevokeReason::UserBlocked,
            RevokeReason::UserDeleted,
            RevokeReason::SessionLimit,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When and why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRevocation {
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: RevokeReason,
}

/// Who the session was started for, as the client told us. Shown to the user in the session list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The OAuth client id (`tessera` for first-party logins).
    pub client_id: String,
    /// The `User-Agent` at login, truncated.
    pub user_agent: Option<String>,
    /// The client address at login.
    pub ip: Option<String>,
}

/// Lifetimes of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session not refreshed for this long expires.
    pub idle_ttl: Duration,
    /// A session expires this long after login, however often it is refreshed.
    pub max_age: Duration,
    /// How long after a rotation the parent token may be presented again and get the same child.
    pub grace: Duration,
}

/// The stored state of one session. No token and no token hash: only what recomputes the tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Random per-session input of the refresh-token MAC.
    pub nonce: [u8; 32],
    /// Id of the refresh MAC key this session's tokens are made with.
    pub key_id: String,
    /// The generation of the one refresh token that can rotate.
    pub generation: u64,
    /// Login time.
    pub created_at: Timestamp,
    /// Time of the last rotation (the login time before the first one).
    pub rotated_at: Timestamp,
    /// Last login, rotation or grace retry.
    pub last_used_at: Timestamp,
    /// Expires if not refreshed by then.
    pub idle_expires_at: Timestamp,
    /// Expires then, whatever happens.
    pub absolute_expires_at: Timestamp,
    /// Set once revoked; never cleared.
    pub revoked: Option<SessionRevocation>,
    /// Client metadata.
    pub client: ClientInfo,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("generation", &self.generation)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session for `user_id`, made with refresh key `key_id`, at generation 0.
    pub fn new(
        user_id: UserId,
        key_id: String,
        client: ClientInfo,
        policy: &SessionPolicy,
        now: Timestamp,
    ) -> Self {
        let mut nonce = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let absolute_expires_at = now.plus(policy.max_age);
        Self {
            id: SessionId::random(),
            user_id,
            nonce,
            key_id,
            generation: 0,
            created_at: now,
            rotated_at: now,
            last_used_at: now,
            idle_expires_at: now.plus(policy.idle_ttl).min(absolute_expires_at),
            absolute_expires_at,
            revoked: None,
            client,
        }
    }

    /// When the session stops being usable if nothing else happens.
    pub fn expires_at(&self) -> Timestamp {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// The state after rotating at `now`: next generation, idle expiry slid forward but never past
    /// the absolute expiry (rotation never extends a session's life beyond its maximum age).
    pub fn rotated(&self, policy: &SessionPolicy, now: Timestamp) -> Session {
        let mut next = self.clone();
        next.generation = self.generation.saturating_add(1);
        next.rotated_at = now;
        next.last_used_at = now;
        next.idle_expires_at = now.plus(policy.idle_ttl).min(self.absolute_expires_at);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_never_extends_the_absolute_expiry() {
        let policy = SessionPolicy {
            idle_ttl: Duration::from_secs(100),
            max_age: Duration::from_secs(150),
            grace: Duration::from_secs(5),
        };
        let start = Timestamp::from_secs(1000);
        let s = Session::new(
            UserId::random(),
            "k".into(),
            ClientInfo::default(),
            &policy,
            start,
        );
        assert_eq!(s.idle_expires_at, Timestamp::from_secs(1100));
        let r = s.rotated(&policy, Timestamp::from_secs(1090));
        assert_eq!(r.generation, 1);
        assert_eq!(
            r.idle_expires_at,
            Timestamp::from_secs(1150),
            "capped by the absolute expiry"
        );
        assert_eq!(r.absolute_expires_at, s.absolute_expires_at);
    }

    #[test]
    fn revoke_reasons_round_trip_through_text() {
        for r in [
            RevokeReason::Logout,
            RevokeReason::ReuseDetected,
            RevokeReason::SessionLimit,
        ] {
            assert_eq!(RevokeReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RevokeReason::parse("nope"), None);
    }
}
