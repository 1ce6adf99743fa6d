//! The refresh decision: what presenting `rt1.<sid>.<gen>.<tag>` means (DESIGN §2).
//!
//! 1. Tag wrong, session unknown, or key retired → [`Refusal::Invalid`]. Nothing is revoked:
//!    garbage must not be able to log a victim out.
//! 2. Session or user dead (revoked, expired, blocked, cut off) → [`Refusal::Dead`].
//! 3. `gen == current` → [`Decision::Rotate`] (the store then compare-and-sets the generation).
//! 4. `gen == current - 1` and the last rotation is younger than the grace interval →
//!    [`Decision::GraceRetry`]: the same child token again, which only exists while unused.
//! 5. Any other authentic generation → [`Refusal::Reuse`]: revoke the whole session.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::keys::RefreshKeys;
use crate::refresh::RefreshToken;
use crate::revocation::RevocationSet;
use crate::session::Session;
use crate::validity::{self, Dead, Subject, UserStanding};

/// A refresh that succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Advance the generation and hand out its token.
    Rotate,
    /// Hand out the current generation's token again (lost response, several tabs).
    GraceRetry,
}

/// A refresh that is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unknown session, bad tag, retired key: all look the same from outside.
    Invalid,
    /// The session or its user is dead.
    Dead(Dead),
    /// An authentic token of an older generation: the family is compromised.
    Reuse,
}

impl Decision {
    /// Stable outcome label (API header, metrics, audit).
    pub fn outcome(self) -> &'static str {
        match self {
            Decision::Rotate => "rotated",
            Decision::GraceRetry => "grace_retry",
        }
    }
}

impl Refusal {
    /// Stable outcome label (API header, metrics, audit).
    pub fn outcome(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid",
            Refusal::Dead(Dead::SessionExpired) => "expired",
            Refusal::Dead(Dead::UserBlocked) => "blocked",
            Refusal::Dead(_) => "revoked",
            Refusal::Reuse => "reused",
        }
    }

    /// Stable reason code sent to the client with `invalid_grant`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid_refresh_token",
            Refusal::Dead(dead) => dead.reason(),
            Refusal::Reuse => "refresh_token_reused",
        }
    }
}

/// Decides what presenting `token` means, given the session it names (if the store has it).
pub fn decide(
    token: &RefreshToken,
    session: Option<&Session>,
    keys: &RefreshKeys,
    user: &UserStanding,
    revocations: &RevocationSet,
    grace: Duration,
    now: Timestamp,
) -> Result<Decision, Refusal> {
    let session = session.ok_or(Refusal::Invalid)?;
    let key = keys.get(&session.key_id).ok_or(Refusal::Invalid)?;
    // Rule 1: authenticity comes first, so an unauthenticated request learns nothing about the
    // session and changes nothing.
    if session.id != token.sid || !token.tag_matches(key, &session.nonce) {
        return Err(Refusal::Invalid);
    }
    // Rule 2: a dead session stays dead; even a replay inside the grace window is refused.
    validity::check(Subject::Session { session, user }, revocations, now).map_err(Refusal::Dead)?;
    // Rules 3 to 5.
    if token.generation == session.generation {
        Ok(Decision::Rotate)
    } else if token.generation.checked_add(1) == Some(session.generation)
        && now.since(session.rotated_at) < grace
    {
        Ok(Decision::GraceRetry)
    } else {
        Err(Refusal::Reuse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SessionId, UserId};
    use crate::keys::RefreshKey;
    use crate::revocation::RevocationEntry;
    use crate::session::{ClientInfo, RevokeReason, SessionPolicy, SessionRevocation};

    const GRACE: Duration = Duration::from_secs(5);

    struct World {
        keys: RefreshKeys,
        policy: SessionPolicy,
        session: Session,
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn world() -> World {
        let key = RefreshKey::generate(t(0));
        let policy = SessionPolicy {
            idle_ttl: Duration::from_secs(100),
            max_age: Duration::from_secs(1000),
            grace: GRACE,
        };
        let session = Session::new(
            UserId::random(),
            key.kid.clone(),
            ClientInfo::default(),
            &policy,
            t(1000),
        );
        World {
            keys: RefreshKeys::new(vec![key]).expect("key"),
            policy,
            session,
        }
    }

    impl World {
        fn token(&self, generation: u64) -> RefreshToken {
            let key = self.keys.get(&self.session.key_id).expect("key");
            RefreshToken::parse(&RefreshToken::issue(
                key,
                &self.session.id,
                generation,
                &self.session.nonce,
            ))
            .expect("parses")
        }

        fn decide_at(&self, token: &RefreshToken, now: i64) -> Result<Decision, Refusal> {
            self.decide_with(
                token,
                &UserStanding::default(),
                &RevocationSet::default(),
                now,
            )
        }

        fn decide_with(
            &self,
            token: &RefreshToken,
            user: &UserStanding,
            set: &RevocationSet,
            now: i64,
        ) -> Result<Decision, Refusal> {
            decide(
                token,
                Some(&self.session),
                &self.keys,
                user,
                set,
                GRACE,
                t(now),
            )
        }

        fn rotate(&mut self, now: i64) {
            self.session = self.session.rotated(&self.policy, t(now));
        }
    }

    #[test]
    fn current_generation_rotates() {
        let w = world();
        assert_eq!(w.decide_at(&w.token(0), 1001), Ok(Decision::Rotate));
    }

    #[test]
    fn parent_inside_the_grace_retries() {
        let mut w = world();
        w.rotate(1010);
        assert_eq!(w.decide_at(&w.token(0), 1014), Ok(Decision::GraceRetry));
    }

    #[test]
    fn parent_after_the_grace_is_reuse() {
        let mut w = world();
        w.rotate(1010);
        assert_eq!(w.decide_at(&w.token(0), 1015), Err(Refusal::Reuse));
    }

    #[test]
    fn older_generation_inside_the_grace_is_reuse() {
        let mut w = world();
        w.rotate(1010);
        w.rotate(1011);
        assert_eq!(
            w.decide_at(&w.token(0), 1012),
            Err(Refusal::Reuse),
            "grandparent"
        );
        assert_eq!(
            w.decide_at(&w.token(1), 1012),
            Ok(Decision::GraceRetry),
            "parent"
        );
    }

    #[test]
    fn grace_zero_never_retries() {
        let mut w = world();
        w.rotate(1010);
        let decided = decide(
            &w.token(0),
            Some(&w.session),
            &w.keys,
            &UserStanding::default(),
            &RevocationSet::default(),
            Duration::ZERO,
            t(1010),
        );
        assert_eq!(decided, Err(Refusal::Reuse));
    }

    #[test]
    fn a_future_generation_is_reuse_not_rotation() {
        let w = world();
        assert_eq!(w.decide_at(&w.token(7), 1001), Err(Refusal::Reuse));
    }

    #[test]
    fn a_tag_altered_at_any_byte_is_invalid_and_not_reuse() {
        let w = world();
        let good = RefreshToken::issue(w.keys.current(), &w.session.id, 0, &w.session.nonce);
        let tag_start = good.rfind('.').expect("dot") + 1;
        for i in tag_start..good.len() {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(altered) = RefreshToken::parse(&String::from_utf8(bytes).expect("ascii")) else {
                continue; // non-canonical base64 in the last character is refused by the parser
            };
            assert_eq!(
                w.decide_at(&altered, 1001),
                Err(Refusal::Invalid),
                "char {i}"
            );
        }
    }

    #[test]
    fn unknown_session_is_invalid() {
        let w = world();
        let mut token = w.token(0);
        token.sid = SessionId::random();
        assert_eq!(
            decide(
                &token,
                None,
                &w.keys,
                &UserStanding::default(),
                &RevocationSet::default(),
                GRACE,
                t(1001)
            ),
            Err(Refusal::Invalid)
        );
        // A token naming one session checked against another is refused too.
        assert_eq!(w.decide_at(&token, 1001), Err(Refusal::Invalid));
    }

    #[test]
    fn retired_key_is_invalid() {
        let w = world();
        let other = RefreshKeys::new(vec![RefreshKey::generate(t(0))]).expect("key");
        let decided = decide(
            &w.token(0),
            Some(&w.session),
            &other,
            &UserStanding::default(),
            &RevocationSet::default(),
            GRACE,
            t(1001),
        );
        assert_eq!(decided, Err(Refusal::Invalid));
    }

    #[test]
    fn idle_expiry() {
        let w = world();
        assert_eq!(w.decide_at(&w.token(0), 1099), Ok(Decision::Rotate));
        assert_eq!(
            w.decide_at(&w.token(0), 1100),
            Err(Refusal::Dead(Dead::SessionExpired))
        );
    }

    #[test]
    fn absolute_expiry_even_right_after_a_rotation() {
        let mut w = world();
        let mut now = 1000;
        while now < 1990 {
            now += 90;
            w.rotate(now.min(1990));
        }
        assert_eq!(
            w.decide_at(&w.token(w.session.generation), 1999),
            Ok(Decision::Rotate)
        );
        assert_eq!(
            w.decide_at(&w.token(w.session.generation), 2000),
            Err(Refusal::Dead(Dead::SessionExpired))
        );
    }

    #[test]
    fn expired_parent_inside_the_grace_is_refused() {
        let mut w = world();
        w.rotate(1098);
        w.session.idle_expires_at = t(1099);
        assert_eq!(
            w.decide_at(&w.token(0), 1100),
            Err(Refusal::Dead(Dead::SessionExpired))
        );
    }

    #[test]
    fn revoked_session() {
        let mut w = world();
        w.session.revoked = Some(SessionRevocation {
            at: t(1005),
            reason: RevokeReason::ReuseDetected,
        });
        let refused = w.decide_at(&w.token(0), 1006);
        assert_eq!(
            refused,
            Err(Refusal::Dead(Dead::SessionRevoked(Some(
                RevokeReason::ReuseDetected
            ))))
        );
        assert_eq!(refused.map_err(Refusal::reason), Err("session_revoked"));
        // Revoked through the revocation set only (another instance's write not yet in the row).
        let w = world();
        let mut set = RevocationSet::default();
        set.apply(&RevocationEntry::RevokedSession {
            sid: w.session.id,
            at: t(1005),
            until: t(2000),
        });
        assert_eq!(
            w.decide_with(&w.token(0), &UserStanding::default(), &set, 1006),
            Err(Refusal::Dead(Dead::SessionRevoked(None)))
        );
    }

    #[test]
    fn blocked_user() {
        let w = world();
        let blocked = UserStanding {
            blocked: true,
            cutoff: None,
        };
        let refused = w.decide_with(&w.token(0), &blocked, &RevocationSet::default(), 1001);
        assert_eq!(refused, Err(Refusal::Dead(Dead::UserBlocked)));
        assert_eq!(refused.map_err(Refusal::outcome), Err("blocked"));
    }

    #[test]
    fn user_cutoff_after_login() {
        let w = world();
        let cut = UserStanding {
            blocked: false,
            cutoff: Some(t(1001)),
        };
        assert_eq!(
            w.decide_with(&w.token(0), &cut, &RevocationSet::default(), 1002),
            Err(Refusal::Dead(Dead::UserCutoff))
        );
    }
}
