//! The revocation state: three small sets, each entry kept only while a token it could kill might
//! still be alive.
//!
//! - denied `jti` → until that token's `exp` (plus leeway): the logout "blacklist" of the seeds;
//! - revoked `sid` → revoked at; kept one access-token lifetime (plus leeway);
//! - user cutoff `sub` → time; tokens issued before it are dead; kept one access-token lifetime.
//!
//! Entries are only ever added (nothing is "un-revoked"), so copies of this set on several
//! instances converge however the entries are delivered.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{SessionId, TokenId};

/// One revocation, as stored and as carried by the revocation bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevocationEntry {
    /// One access token is denied.
    DeniedToken {
        /// Its `jti`.
        jti: TokenId,
        /// When the entry may be forgotten.
        until: Timestamp,
    },
    /// Every access token of a session is dead.
    RevokedSession {
        /// The session.
        sid: SessionId,
        /// When it was revoked.
        at: Timestamp,
        /// When the entry may be forgotten.
        until: Timestamp,
    },
    /// Every access token of a user issued before `at` is dead.
    UserCutoff {
        /// The user id.
        sub: String,
        /// The cutoff.
        at: Timestamp,
        /// When the entry may be forgotten.
        until: Timestamp,
    },
}

impl RevocationEntry {
    /// When the entry may be forgotten.
    pub fn until(&self) -> Timestamp {
        match self {
            RevocationEntry::DeniedToken { until, .. }
            | RevocationEntry::RevokedSession { until, .. }
            | RevocationEntry::UserCutoff { until, .. } => *until,
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.as_millis())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(Timestamp::from_millis)
    }
}

/// An in-memory copy of the revocation state, for checks with no I/O.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    denied: HashMap<TokenId, Timestamp>,
    sessions: HashMap<SessionId, (Timestamp, Timestamp)>,
    users: HashMap<String, (Timestamp, Timestamp)>,
}

impl RevocationSet {
    /// Adds one entry. Applying an entry twice, or entries in any order, gives the same set.
    pub fn apply(&mut self, entry: &RevocationEntry) {
        match entry {
            RevocationEntry::DeniedToken { jti, until } => {
                let e = self.denied.entry(*jti).or_insert(*until);
                *e = (*e).max(*until);
            }
            RevocationEntry::RevokedSession { sid, at, until } => {
                let e = self.sessions.entry(*sid).or_insert((*at, *until));
                *e = (e.0.min(*at), e.1.max(*until));
            }
            RevocationEntry::UserCutoff { sub, at, until } => {
                let e = self.users.entry(sub.clone()).or_insert((*at, *until));
                *e = (e.0.max(*at), e.1.max(*until));
            }
        }
    }

    /// Forgets every entry whose time has passed.
    pub fn purge(&mut self, now: Timestamp) {
        self.denied.retain(|_, until| *until > now);
        self.sessions.retain(|_, (_, until)| *until > now);
        self.users.retain(|_, (_, until)| *until > now);
    }

    /// Whether the access token `jti` is denied.
    pub fn is_denied(&self, jti: &TokenId) -> bool {
        self.denied.contains_key(jti)
    }

    /// When session `sid` was revoked, if it was.
    pub fn session_revoked_at(&self, sid: &SessionId) -> Option<Timestamp> {
        self.sessions.get(sid).map(|(at, _)| *at)
    }

    /// The cutoff of user `sub`, if any.
    pub fn user_cutoff(&self, sub: &str) -> Option<Timestamp> {
        self.users.get(sub).map(|(at, _)| *at)
    }

    /// Every entry, as it would be written to the log (for a snapshot).
    pub fn entries(&self) -> Vec<RevocationEntry> {
        let denied = self
            .denied
            .iter()
            .map(|(jti, until)| RevocationEntry::DeniedToken {
                jti: *jti,
                until: *until,
            });
        let sessions =
            self.sessions
                .iter()
                .map(|(sid, (at, until))| RevocationEntry::RevokedSession {
                    sid: *sid,
                    at: *at,
                    until: *until,
                });
        let users = self
            .users
            .iter()
            .map(|(sub, (at, until))| RevocationEntry::UserCutoff {
                sub: sub.clone(),
                at: *at,
                until: *until,
            });
        denied.chain(sessions).chain(users).collect()
    }

    /// Number of entries, for metrics.
    pub fn len(&self) -> usize {
        self.denied.len() + self.sessions.len() + self.users.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_converge_in_any_order_and_expire() {
        let sid = SessionId::random();
        let a = RevocationEntry::UserCutoff {
            sub: "u".into(),
            at: Timestamp::from_secs(10),
            until: Timestamp::from_secs(20),
        };
        let b = RevocationEntry::UserCutoff {
            sub: "u".into(),
            at: Timestamp::from_secs(15),
            until: Timestamp::from_secs(25),
        };
        let c = RevocationEntry::RevokedSession {
            sid,
            at: Timestamp::from_secs(5),
            until: Timestamp::from_secs(8),
        };
        let mut one = RevocationSet::default();
        let mut two = RevocationSet::default();
        for e in [&a, &b, &c] {
            one.apply(e);
        }
        for e in [&c, &b, &a, &b] {
            two.apply(e);
        }
        assert_eq!(one.user_cutoff("u"), Some(Timestamp::from_secs(15)));
        assert_eq!(two.user_cutoff("u"), Some(Timestamp::from_secs(15)));
        assert_eq!(one.session_revoked_at(&sid), two.session_revoked_at(&sid));
        one.purge(Timestamp::from_secs(8));
        assert_eq!(one.session_revoked_at(&sid), None);
        assert_eq!(one.user_cutoff("u"), Some(Timestamp::from_secs(15)));
        one.purge(Timestamp::from_secs(25));
        assert!(one.is_empty());
    }

    #[test]
    fn the_entries_rebuild_the_same_set() {
        let mut set = RevocationSet::default();
        let t = Timestamp::from_secs;
        set.apply(&RevocationEntry::DeniedToken {
            jti: TokenId::random(),
            until: t(9),
        });
        set.apply(&RevocationEntry::RevokedSession {
            sid: SessionId::random(),
            at: t(1),
            until: t(9),
        });
        set.apply(&RevocationEntry::UserCutoff {
            sub: "u".into(),
            at: t(2),
            until: t(9),
        });
        let mut copy = RevocationSet::default();
        for entry in set.entries() {
            copy.apply(&entry);
        }
        assert_eq!(copy.len(), 3);
        assert_eq!(copy.entries().len(), 3);
        assert_eq!(copy.user_cutoff("u"), Some(t(2)));
        let mut a = set.entries();
        let mut b = copy.entries();
        let key = |e: &RevocationEntry| serde_json::to_string(e).expect("json");
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b);
    }

    #[test]
    fn entries_serialize_with_a_kind_tag() {
        let e = RevocationEntry::DeniedToken {
            jti: TokenId::from_bytes([0; 16]),
            until: Timestamp::from_millis(5),
        };
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "denied_token", "jti": "AAAAAAAAAAAAAAAAAAAAAA", "until": 5})
        );
        assert_eq!(
            serde_json::from_value::<RevocationEntry>(json).expect("parse"),
            e
        );
    }
}
