//! THE validity check. Refresh, verify, `/me`, logout, the admin API and (later) introspection all
//! ask [`check`] whether a token or a session is alive, so no path can forget a rule.

use crate::access::AccessClaims;
use crate::clock::Timestamp;
use crate::revocation::RevocationSet;
use crate::session::{RevokeReason, Session};

/// What the user store says about a session's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserStanding {
    /// Blocked users can neither log in nor refresh.
    pub blocked: bool,
    /// Durable cutoff: sessions created and tokens issued before it are dead.
    pub cutoff: Option<Timestamp>,
}

/// What is checked.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// An access token whose signature and claims were already verified.
    Access(&'a AccessClaims),
    /// A session, with its owner's standing.
    Session {
        /// The session.
        session: &'a Session,
        /// Its owner.
        user: &'a UserStanding,
    },
}

/// Why a token or session is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dead {
    /// This access token was denied (logout).
    #[error("token revoked")]
    TokenDenied,
    /// Its session was revoked.
    #[error("session revoked")]
    SessionRevoked(Option<RevokeReason>),
    /// The user logged out everywhere, or was forced out, after this was issued.
    #[error("user logged out")]
    UserCutoff,
    /// The user is blocked.
    #[error("user blocked")]
    UserBlocked,
    /// The session's idle or absolute expiry has passed.
    #[error("session expired")]
    SessionExpired,
}

impl Dead {
    /// Stable reason code, as seen in refresh errors and the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Dead::TokenDenied => "token_revoked",
            Dead::SessionRevoked(_) | Dead::UserCutoff => "session_revoked",
            Dead::UserBlocked => "user_blocked",
            Dead::SessionExpired => "session_expired",
        }
    }
}

/// Whether `subject` is alive at `now`, given the revocation state.
pub fn check(
    subject: Subject<'_>,
    revocations: &RevocationSet,
    now: Timestamp,
) -> Result<(), Dead> {
    match subject {
        Subject::Access(claims) => {
            if revocations.is_denied(&claims.jti) {
                return Err(Dead::TokenDenied);
            }
            if revocations.session_revoked_at(&claims.sid).is_some() {
                return Err(Dead::SessionRevoked(None));
            }
            // `iat` has one-second resolution: a token is dead if issued in a second wholly before
            // the cutoff. Tokens issued earlier within the cutoff's own second are killed through
            // their session, which every cutoff also revokes.
            if let Some(cutoff) = revocations.user_cutoff(&claims.sub) {
                if claims.iat < cutoff.as_secs() {
                    return Err(Dead::UserCutoff);
                }
            }
            Ok(())
        }
        Subject::Session { session, user } => {
            if user.blocked {
                return Err(Dead::UserBlocked);
            }
            if let Some(revoked) = session.revoked {
                return Err(Dead::SessionRevoked(Some(revoked.reason)));
            }
            if revocations.session_revoked_at(&session.id).is_some() {
                return Err(Dead::SessionRevoked(None));
            }
            let cutoff = user
                .cutoff
                .max(revocations.user_cutoff(session.user_id.as_str()));
            if cutoff.is_some_and(|cutoff| session.created_at < cutoff) {
                return Err(Dead::UserCutoff);
            }
            if now >= session.expires_at() {
                return Err(Dead::SessionExpired);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Audience;
    use crate::ids::{SessionId, TokenId, UserId};
    use crate::revocation::RevocationEntry;
    use crate::session::{ClientInfo, SessionPolicy, SessionRevocation};
    use std::time::Duration;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn claims(iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "u".into(),
            aud: Audience::One("a".into()),
            exp: iat + 300,
            iat,
            nbf: None,
            jti: TokenId::random(),
            sid: SessionId::random(),
            client_id: "c".into(),
            scope: None,
            roles: vec![],
        }
    }

    #[test]
    fn access_token_rules() {
        let c = claims(100);
        let mut set = RevocationSet::default();
        assert_eq!(check(Subject::Access(&c), &set, t(100)), Ok(()));

        set.apply(&RevocationEntry::UserCutoff {
            sub: "u".into(),
            at: Timestamp::from_millis(100_500),
            until: t(1000),
        });
        assert_eq!(
            check(Subject::Access(&c), &set, t(100)),
            Ok(()),
            "same second: left to the session"
        );
        assert_eq!(
            check(Subject::Access(&claims(99)), &set, t(100)),
            Err(Dead::UserCutoff)
        );
        assert_eq!(
            check(Subject::Access(&claims(101)), &set, t(101)),
            Ok(()),
            "issued after the cutoff"
        );

        set.apply(&RevocationEntry::RevokedSession {
            sid: c.sid,
            at: t(100),
            until: t(1000),
        });
        assert_eq!(
            check(Subject::Access(&c), &set, t(100)),
            Err(Dead::SessionRevoked(None))
        );

        let d = claims(200);
        set.apply(&RevocationEntry::DeniedToken {
            jti: d.jti,
            until: t(1000),
        });
        assert_eq!(
            check(Subject::Access(&d), &set, t(200)),
            Err(Dead::TokenDenied)
        );
    }

    #[test]
    fn session_rules() {
        let policy = SessionPolicy {
            idle_ttl: Duration::from_secs(50),
            max_age: Duration::from_secs(500),
            grace: Duration::ZERO,
        };
        let s = Session::new(
            UserId::random(),
            "k".into(),
            ClientInfo::default(),
            &policy,
            t(100),
        );
        let ok = UserStanding::default();
        let none = RevocationSet::default();
        let check_at = |s: &Session, user: &UserStanding, set: &RevocationSet, now| {
            check(Subject::Session { session: s, user }, set, t(now))
        };

        assert_eq!(check_at(&s, &ok, &none, 149), Ok(()));
        assert_eq!(
            check_at(&s, &ok, &none, 150),
            Err(Dead::SessionExpired),
            "idle expiry"
        );
        assert_eq!(
            check_at(
                &s,
                &UserStanding {
                    blocked: true,
                    cutoff: None
                },
                &none,
                101
            ),
            Err(Dead::UserBlocked)
        );
        assert_eq!(
            check_at(
                &s,
                &UserStanding {
                    blocked: false,
                    cutoff: Some(t(101))
                },
                &none,
                101
            ),
            Err(Dead::UserCutoff)
        );
        assert_eq!(
            check_at(
                &s,
                &UserStanding {
                    blocked: false,
                    cutoff: Some(t(100))
                },
                &none,
                101
            ),
            Ok(()),
            "created at the cutoff"
        );

        let mut revoked = s.clone();
        revoked.revoked = Some(SessionRevocation {
            at: t(120),
            reason: RevokeReason::Logout,
        });
        assert_eq!(
            check_at(&revoked, &ok, &none, 121),
            Err(Dead::SessionRevoked(Some(RevokeReason::Logout)))
        );

        let mut set = RevocationSet::default();
        set.apply(&RevocationEntry::RevokedSession {
            sid: s.id,
            at: t(120),
            until: t(900),
        });
        assert_eq!(
            check_at(&s, &ok, &set, 121),
            Err(Dead::SessionRevoked(None))
        );

        let mut aged = s.rotated(&policy, t(140));
        for now in [180, 220, 260, 300, 340, 380, 420, 460, 499, 540, 580] {
            assert_eq!(
                check_at(&aged, &ok, &none, now),
                Ok(()),
                "kept alive at {now}"
            );
            aged = aged.rotated(&policy, t(now));
        }
        assert_eq!(check_at(&aged, &ok, &none, 599), Ok(()));
        assert_eq!(
            check_at(&aged, &ok, &none, 600),
            Err(Dead::SessionExpired),
            "absolute expiry, though just rotated"
        );
    }
}
