//! The conformance suite: every backend must behave exactly like this.
//!
//! A backend's test file invokes [`conformance_tests!`](crate::conformance_tests) with an async expression that makes a
//! fresh, empty store and a guard that cleans it up when dropped (a temporary directory, a key
//! prefix); each case becomes its own `#[tokio::test]`, so cases run in parallel, each on its own
//! store.
//!
//! ```text
//! tessera_store::conformance_tests!(async { (my_backend::open_fresh().await, cleanup_guard) });
//! ```

use std::sync::Arc;
use std::time::Duration;

use tessera_core::ids::{SessionId, TokenId, UserId};
use tessera_core::revocation::RevocationEntry;
use tessera_core::session::{ClientInfo, RevokeReason, Session, SessionPolicy};
use tessera_core::Timestamp;

use crate::{NewUser, SessionSelector, SessionStore, StoreError, UserStore};

/// What a conformance case runs against.
pub trait TestStore: UserStore + SessionStore {}
impl<T: UserStore + SessionStore> TestStore for T {}

/// Users from one store, sessions from another (Redis keeps sessions, SQL keeps users).
#[derive(Debug)]
pub struct Pair<U, S>(pub U, pub S);

#[async_trait::async_trait]
impl<U: UserStore, S: Send + Sync + std::fmt::Debug + 'static> UserStore for Pair<U, S> {
    async fn create_user(&self, user: &NewUser, now: Timestamp) -> Result<crate::User, StoreError> {
        self.0.create_user(user, now).await
    }
    async fn import_user(&self, user: &crate::User, now: Timestamp) -> Result<(), StoreError> {
        self.0.import_user(user, now).await
    }
    async fn login_failures(&self, account: &str) -> Result<Option<(u32, Timestamp)>, StoreError> {
        self.0.login_failures(account).await
    }
    async fn record_login_failure(&self, account: &str, now: Timestamp) -> Result<u32, StoreError> {
        self.0.record_login_failure(account, now).await
    }
    async fn clear_login_failures(&self, account: &str) -> Result<(), StoreError> {
        self.0.clear_login_failures(account).await
    }
    async fn purge_login_failures(&self, before: Timestamp, batch: u32) -> Result<u64, StoreError> {
        self.0.purge_login_failures(before, batch).await
    }
    async fn keyring(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        self.0.keyring().await
    }
    async fn swap_keyring(&self, expected: i64, sealed: &[u8]) -> Result<bool, StoreError> {
        self.0.swap_keyring(expected, sealed).await
    }
    async fn user_by_id(&self, id: &UserId) -> Result<Option<crate::User>, StoreError> {
        self.0.user_by_id(id).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<crate::User>, StoreError> {
        self.0.user_by_username(username).await
    }
    async fn list_users(
        &self,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<Vec<crate::User>, StoreError> {
        self.0.list_users(after, limit).await
    }
    async fn set_password_hash(
        &self,
        id: &UserId,
        phc: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.set_password_hash(id, phc, now).await
    }
    async fn set_blocked(
        &self,
        id: &UserId,
        blocked: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.set_blocked(id, blocked, now).await
    }
    async fn raise_cutoff(&self, id: &UserId, at: Timestamp) -> Result<bool, StoreError> {
        self.0.raise_cutoff(id, at).await
    }
    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        self.0.delete_user(id).await
    }
}

#[async_trait::async_trait]
impl<U: Send + Sync + std::fmt::Debug + 'static, S: SessionStore> SessionStore for Pair<U, S> {
    async fn create_session(
        &self,
        session: &Session,
        max_live: u32,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.1.create_session(session, max_live, keep).await
    }
    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.1.session(id).await
    }
    async fn rotate(&self, next: &Session, expected_generation: u64) -> Result<bool, StoreError> {
        self.1.rotate(next, expected_generation).await
    }
    async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: RevokeReason,
        now: Timestamp,
        keep: Duration,
    ) -> Result<Vec<RevocationEntry>, StoreError> {
        self.1.revoke_sessions(selector, reason, now, keep).await
    }
    async fn record(&self, entries: &[RevocationEntry], now: Timestamp) -> Result<(), StoreError> {
        self.1.record(entries, now).await
    }
    async fn live_sessions(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.1.live_sessions(user_id, now).await
    }
    async fn revocations_since(
        &self,
        cursor: u64,
        now: Timestamp,
    ) -> Result<crate::RevocationBatch, StoreError> {
        self.1.revocations_since(cursor, now).await
    }
    async fn purge(&self, now: Timestamp, keep: Duration, batch: u32) -> Result<u64, StoreError> {
        self.1.purge(now, keep, batch).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.1.ping().await
    }
    async fn count_live_sessions(&self, now: Timestamp) -> Result<Option<u64>, StoreError> {
        self.1.count_live_sessions(now).await
    }
    fn caches_sessions(&self) -> bool {
        self.1.caches_sessions()
    }
    async fn session_from_source(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.1.session_from_source(id).await
    }
    fn degraded(&self) -> Option<&'static str> {
        self.1.degraded()
    }
}

const KEEP: Duration = Duration::from_secs(330);

fn policy() -> SessionPolicy {
    SessionPolicy {
        idle_ttl: Duration::from_secs(100),
        max_age: Duration::from_secs(1000),
        grace: Duration::from_secs(5),
    }
}

fn t(secs: i64) -> Timestamp {
    // A fixed, realistic epoch so backends that store absolute times behave as in production.
    Timestamp::from_secs(1_800_000_000 + secs)
}

async fn user(store: &impl TestStore, name: &str) -> UserId {
    let new = NewUser {
        username: name.into(),
        password_hash: Some("$argon2id$x".into()),
        roles: vec!["r".into()],
    };
    store.create_user(&new, t(0)).await.expect("create user").id
}

async fn session_at(store: &impl TestStore, user_id: &UserId, at: i64) -> Session {
    let client = ClientInfo {
        client_id: "tessera".into(),
        user_agent: Some("ua".into()),
        ip: Some("127.0.0.1".into()),
    };
    let s = Session::new(user_id.clone(), "k1".into(), client, &policy(), t(at));
    store
        .create_session(&s, 100, KEEP)
        .await
        .expect("create session");
    s
}

/// Users: create, find by id and by name (ignoring case), uniqueness, updates, delete.
pub async fn users(store: impl TestStore) {
    let new = NewUser {
        username: "Alice".into(),
        password_hash: Some("$argon2id$a".into()),
        roles: vec!["admin".into()],
    };
    let alice = store.create_user(&new, t(0)).await.expect("create");
    assert_eq!(
        store.user_by_id(&alice.id).await.expect("by id"),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username("alice").await.expect("by name"),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .user_by_username("ALICE")
            .await
            .expect("by name")
            .map(|u| u.roles),
        Some(vec!["admin".to_owned()])
    );
    let dup = NewUser {
        username: "ALICE".into(),
        ..new.clone()
    };
    assert!(
        matches!(
            store.create_user(&dup, t(0)).await,
            Err(StoreError::Conflict(_))
        ),
        "names are unique ignoring case"
    );

    assert!(store
        .set_password_hash(&alice.id, "$argon2id$b", t(1))
        .await
        .expect("rehash"));
    assert!(store
        .set_blocked(&alice.id, true, t(1))
        .await
        .expect("block"));
    assert!(store.raise_cutoff(&alice.id, t(5)).await.expect("cutoff"));
    assert!(
        store.raise_cutoff(&alice.id, t(3)).await.expect("cutoff"),
        "found, but never lowered"
    );
    let now = store
        .user_by_id(&alice.id)
        .await
        .expect("by id")
        .expect("exists");
    assert_eq!(now.password_hash.as_deref(), Some("$argon2id$b"));
    assert!(now.blocked);
    assert_eq!(now.cutoff, Some(t(5)));
    assert!(store
        .set_blocked(&alice.id, false, t(6))
        .await
        .expect("unblock"));
    assert!(
        !store
            .user_by_id(&alice.id)
            .await
            .expect("by id")
            .expect("exists")
            .blocked
    );

    let nobody = UserId::random();
    assert!(!store
        .set_blocked(&nobody, true, t(1))
        .await
        .expect("no user"));
    assert!(!store.raise_cutoff(&nobody, t(1)).await.expect("no user"));
    assert_eq!(store.user_by_id(&nobody).await.expect("by id"), None);

    let bob = store
        .create_user(
            &NewUser {
                username: "bob".into(),
                password_hash: None,
                roles: vec![],
            },
            t(1),
        )
        .await
        .expect("bob");
    let page = store.list_users(None, 10).await.expect("list");
    assert_eq!(
        page.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        ["Alice", "bob"]
    );
    let next = store.list_users(Some(&alice.id), 10).await.expect("list");
    assert_eq!(
        next.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [bob.id.as_str()]
    );

    assert!(store.delete_user(&alice.id).await.expect("delete"));
    assert!(!store.delete_user(&alice.id).await.expect("delete again"));
    assert_eq!(
        store.user_by_username("alice").await.expect("by name"),
        None
    );
}

/// Failed logins per account: counted atomically under concurrency, cleared by a success,
/// purged when idle.
pub async fn login_failures(store: impl TestStore) {
    assert_eq!(store.login_failures("alice").await.expect("read"), None);
    assert_eq!(
        store
            .record_login_failure("alice", t(10))
            .await
            .expect("one"),
        1
    );
    let store = Arc::new(store);
    let writers: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .record_login_failure("alice", t(11 + i))
                    .await
                    .expect("record")
            })
        })
        .collect();
    let mut counts = Vec::new();
    for w in writers {
        counts.push(w.await.expect("task"));
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (2..=21).collect::<Vec<u32>>(),
        "every failure counted once"
    );
    let (failures, last) = store
        .login_failures("alice")
        .await
        .expect("read")
        .expect("some");
    assert_eq!(failures, 21);
    assert!(last >= t(11));
    // A writer whose clock is behind never moves the last failure back (it would shorten the
    // delay).
    store
        .record_login_failure("carol", t(100))
        .await
        .expect("carol");
    store
        .record_login_failure("carol", t(50))
        .await
        .expect("carol again");
    assert_eq!(
        store.login_failures("carol").await.expect("read"),
        Some((2, t(100)))
    );
    store.clear_login_failures("carol").await.expect("clear");
    store.record_login_failure("bob", t(5)).await.expect("bob");
    store.clear_login_failures("alice").await.expect("clear");
    assert_eq!(store.login_failures("alice").await.expect("read"), None);
    assert_eq!(
        store.purge_login_failures(t(6), 100).await.expect("purge"),
        1
    );
    assert_eq!(store.login_failures("bob").await.expect("read"), None);
}

/// The shared key ring: created once, then replaced only by a writer that read the version
/// it replaces; of concurrent writers exactly one wins.
pub async fn keyring(store: impl TestStore) {
    assert_eq!(store.keyring().await.expect("read"), None);
    assert!(store.swap_keyring(0, b"first").await.expect("create"));
    assert!(!store.swap_keyring(0, b"again").await.expect("create twice"));
    assert!(!store
        .swap_keyring(5, b"stale")
        .await
        .expect("wrong version"));
    assert_eq!(
        store.keyring().await.expect("read"),
        Some((1, b"first".to_vec()))
    );
    let store = Arc::new(store);
    let writers: Vec<_> = (0..8u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.swap_keyring(1, &[i; 64]).await.expect("swap") })
        })
        .collect();
    let mut won = 0;
    for w in writers {
        won += usize::from(w.await.expect("task"));
    }
    assert_eq!(won, 1, "exactly one writer replaces version 1");
    let (version, sealed) = store.keyring().await.expect("read").expect("present");
    assert_eq!(version, 2);
    assert_eq!(sealed.len(), 64);
}

/// A user imported from another store keeps everything: id, hash, roles, block, cutoff, age.
pub async fn import_users(store: impl TestStore) {
    let user = crate::User {
        id: UserId::random(),
        username: "Imported".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        roles: vec!["admin".into(), "ops".into()],
        blocked: true,
        cutoff: Some(t(500)),
        created_at: t(100),
    };
    store.import_user(&user, t(1_000)).await.expect("import");
    assert_eq!(
        store.user_by_id(&user.id).await.expect("by id"),
        Some(user.clone())
    );
    let plain = crate::User {
        id: UserId::random(),
        username: "plain".into(),
        password_hash: None,
        roles: Vec::new(),
        blocked: false,
        cutoff: None,
        created_at: t(200),
    };
    store.import_user(&plain, t(1_000)).await.expect("import");
    assert_eq!(
        store.user_by_username("PLAIN").await.expect("by name"),
        Some(plain.clone())
    );
    let same_id = crate::User {
        username: "other".into(),
        ..user.clone()
    };
    let same_name = crate::User {
        id: UserId::random(),
        username: "IMPORTED".into(),
        ..user.clone()
    };
    for taken in [same_id, same_name] {
        assert!(
            matches!(
                store.import_user(&taken, t(1_000)).await,
                Err(StoreError::Conflict(_))
            ),
            "{taken:?}"
        );
    }
}

/// Sessions are stored and read back field for field.
pub async fn sessions_round_trip(store: impl TestStore) {
    let u = user(&store, "u").await;
    let s = session_at(&store, &u, 0).await;
    assert_eq!(store.session(&s.id).await.expect("read"), Some(s.clone()));
    assert_eq!(
        store.session(&SessionId::random()).await.expect("read"),
        None
    );
    assert_eq!(
        store.live_sessions(&u, t(1)).await.expect("live"),
        vec![s.clone()]
    );
    assert_eq!(
        store.live_sessions(&u, t(100)).await.expect("live"),
        vec![],
        "idle-expired sessions are not live"
    );
}

/// Rotation is a compare-and-set on the generation.
pub async fn rotate_compare_and_set(store: impl TestStore) {
    let u = user(&store, "u").await;
    let s = session_at(&store, &u, 0).await;
    let next = s.rotated(&policy(), t(10));
    assert!(store.rotate(&next, 0).await.expect("rotate"));
    assert!(
        !store.rotate(&next, 0).await.expect("stale"),
        "the same expected generation only once"
    );
    let stored = store.session(&s.id).await.expect("read").expect("exists");
    assert_eq!(stored, next);
    assert_eq!(stored.idle_expires_at, t(110));

    store
        .revoke_sessions(
            &SessionSelector::One(s.id),
            RevokeReason::Logout,
            t(20),
            KEEP,
        )
        .await
        .expect("revoke");
    let after = next.rotated(&policy(), t(30));
    assert!(
        !store.rotate(&after, 1).await.expect("revoked"),
        "a revoked session never rotates"
    );
}

/// Many tasks rotating the same session at once: exactly one wins.
pub async fn rotate_concurrently(store: impl TestStore) {
    let store = Arc::new(store);
    let u = user(&*store, "u").await;
    let s = session_at(&*store, &u, 0).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = Arc::clone(&store);
        let next = s.rotated(&policy(), t(10 + i));
        tasks.push(tokio::spawn(async move {
            store.rotate(&next, 0).await.expect("rotate")
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.expect("task"));
    }
    assert_eq!(wins, 1, "exactly one rotation wins");
    assert_eq!(
        store
            .session(&s.id)
            .await
            .expect("read")
            .expect("exists")
            .generation,
        1,
        "never two successors"
    );
}

/// Many chains rotating at once, several tasks per session (as refreshes of many clients are,
/// with retries racing): per session, exactly the calls that answered `true` moved the
/// generation, one step each, and a revoked session in the middle of it never moves again.
pub async fn rotate_many_at_once(store: impl TestStore) {
    let store = Arc::new(store);
    let u = user(&*store, "u").await;
    let mut sessions = Vec::new();
    for i in 0..12 {
        sessions.push(session_at(&*store, &u, i).await);
    }
    let revoked = sessions[0].id;
    let mut tasks = Vec::new();
    for s in &sessions {
        for _ in 0..3 {
            let (store, s) = (Arc::clone(&store), s.clone());
            tasks.push(tokio::spawn(async move {
                let mut wins = 0u64;
                for step in 0..20 {
                    let Some(current) = store.session(&s.id).await.expect("read") else {
                        break;
                    };
                    let next = current.rotated(&policy(), t(20 + step));
                    if store
                        .rotate(&next, current.generation)
                        .await
                        .expect("rotate")
                    {
                        wins += 1;
                    }
                }
                (s.id, wins)
            }));
        }
    }
    store
        .revoke_sessions(
            &SessionSelector::One(revoked),
            RevokeReason::Logout,
            t(20),
            KEEP,
        )
        .await
        .expect("revoke");
    let revoked_at = store
        .session(&revoked)
        .await
        .expect("read")
        .expect("exists")
        .generation;
    let mut wins = std::collections::HashMap::new();
    for task in tasks {
        let (sid, n) = task.await.expect("task");
        *wins.entry(sid).or_insert(0u64) += n;
    }
    for s in &sessions {
        let stored = store.session(&s.id).await.expect("read").expect("exists");
        assert_eq!(
            stored.generation, wins[&s.id],
            "each successful rotation moved the generation by one"
        );
        if s.id == revoked {
            assert_eq!(
                stored.generation, revoked_at,
                "no rotation after revocation"
            );
        } else {
            assert!(stored.generation >= 20, "every chain advanced");
        }
    }
}

/// Revoking one session, all of a user's, or all but one; entries come back and are logged once.
pub async fn revoke_sessions(store: impl TestStore) {
    let u = user(&store, "u").await;
    let other = user(&store, "other").await;
    let a = session_at(&store, &u, 0).await;
    let b = session_at(&store, &u, 1).await;
    let c = session_at(&store, &u, 2).await;
    let o = session_at(&store, &other, 0).await;
    // Where a store counts live sessions, the count follows revocations.
    let counted = store.count_live_sessions(t(5)).await.expect("count");
    assert!(counted.is_none() || counted == Some(4), "{counted:?}");

    let one = store
        .revoke_sessions(
            &SessionSelector::One(a.id),
            RevokeReason::Logout,
            t(5),
            KEEP,
        )
        .await
        .expect("one");
    assert_eq!(
        one,
        vec![RevocationEntry::RevokedSession {
            sid: a.id,
            at: t(5),
            until: t(5).plus(KEEP)
        }]
    );
    let counted = store.count_live_sessions(t(5)).await.expect("count");
    assert!(counted.is_none() || counted == Some(3), "{counted:?}");
    let again = store
        .revoke_sessions(
            &SessionSelector::One(a.id),
            RevokeReason::Logout,
            t(6),
            KEEP,
        )
        .await
        .expect("again");
    assert!(again.is_empty(), "revoking twice records nothing new");
    let stored = store.session(&a.id).await.expect("read").expect("exists");
    assert_eq!(
        stored.revoked.map(|r| (r.at, r.reason)),
        Some((t(5), RevokeReason::Logout)),
        "first revocation kept"
    );

    let others = SessionSelector::User {
        user_id: u.clone(),
        except: Some(c.id),
    };
    let entries = store
        .revoke_sessions(&others, RevokeReason::LogoutAll, t(7), KEEP)
        .await
        .expect("others");
    assert_eq!(entries.len(), 1, "only b: a was already revoked, c is kept");
    let live: Vec<_> = store
        .live_sessions(&u, t(8))
        .await
        .expect("live")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![c.id]);
    let _ = b;

    let all = SessionSelector::User {
        user_id: u.clone(),
        except: None,
    };
    assert_eq!(
        store
            .revoke_sessions(&all, RevokeReason::ForcedLogout, t(9), KEEP)
            .await
            .expect("all")
            .len(),
        1
    );
    assert!(store
        .live_sessions(&u, t(10))
        .await
        .expect("live")
        .is_empty());
    assert_eq!(
        store
            .live_sessions(&other, t(10))
            .await
            .expect("live")
            .len(),
        1,
        "other users untouched"
    );
    let _ = o;
}

/// The cap on live sessions revokes the oldest, never the new one.
pub async fn session_limit(store: impl TestStore) {
    let u = user(&store, "u").await;
    let client = ClientInfo {
        client_id: "tessera".into(),
        ..ClientInfo::default()
    };
    let mut ids = Vec::new();
    for i in 0..4 {
        let s = Session::new(u.clone(), "k1".into(), client.clone(), &policy(), t(i));
        let evicted = store.create_session(&s, 3, KEEP).await.expect("create");
        if i < 3 {
            assert!(evicted.is_empty());
        } else {
            assert_eq!(
                evicted,
                vec![RevocationEntry::RevokedSession {
                    sid: ids[0],
                    at: t(3),
                    until: t(3).plus(KEEP)
                }]
            );
        }
        ids.push(s.id);
    }
    let evicted = store.session(&ids[0]).await.expect("read").expect("exists");
    assert_eq!(
        evicted.revoked.map(|r| r.reason),
        Some(RevokeReason::SessionLimit)
    );
    // Created in the same millisecond as others: the new session still survives.
    let same = Session::new(u.clone(), "k1".into(), client, &policy(), t(3));
    store.create_session(&same, 3, KEEP).await.expect("create");
    assert!(store
        .session(&same.id)
        .await
        .expect("read")
        .expect("exists")
        .revoked
        .is_none());
    assert_eq!(store.live_sessions(&u, t(4)).await.expect("live").len(), 3);
}

/// The revocation log: written entries come back from a cursor, expired ones do not.
pub async fn revocation_log(store: impl TestStore) {
    let start = store.revocations_since(0, t(0)).await.expect("empty");
    assert!(start.entries.is_empty());
    let denied = RevocationEntry::DeniedToken {
        jti: TokenId::random(),
        until: t(300),
    };
    let cutoff = RevocationEntry::UserCutoff {
        sub: "u".into(),
        at: t(1),
        until: t(331),
    };
    store
        .record(&[denied.clone(), cutoff.clone()], t(0))
        .await
        .expect("record");
    let all = store
        .revocations_since(start.cursor, t(2))
        .await
        .expect("read");
    assert_eq!(all.entries, vec![denied.clone(), cutoff.clone()]);
    let none = store
        .revocations_since(all.cursor, t(2))
        .await
        .expect("read");
    assert!(none.entries.is_empty());
    assert_eq!(
        none.cursor, all.cursor,
        "the cursor does not move without entries"
    );
    let later = store
        .revocations_since(start.cursor, t(300))
        .await
        .expect("read");
    assert_eq!(
        later.entries,
        vec![cutoff],
        "entries past their time are left out"
    );
}

/// The purge removes what has expired, and only that.
pub async fn purge(store: impl TestStore) {
    let u = user(&store, "u").await;
    let old = session_at(&store, &u, 0).await; // expires at t(100)
    let fresh = session_at(&store, &u, 500).await;
    store
        .record(
            &[RevocationEntry::DeniedToken {
                jti: TokenId::random(),
                until: t(50),
            }],
            t(0),
        )
        .await
        .expect("record");
    store
        .record(
            &[RevocationEntry::DeniedToken {
                jti: TokenId::random(),
                until: t(5000),
            }],
            t(0),
        )
        .await
        .expect("record");
    let mut purged = 0;
    loop {
        let n = store
            .purge(t(100).plus(KEEP), KEEP, 1)
            .await
            .expect("purge");
        if n == 0 {
            break;
        }
        purged += n;
    }
    assert!(purged >= 1, "the expired revocation entry is deleted");
    // Deleted for real: even read at a time when it was still in force, it is gone.
    let left = store
        .revocations_since(0, t(0))
        .await
        .expect("read")
        .entries;
    assert_eq!(left.len(), 1, "only the entry still in force remains");
    // Sessions past expiry are deleted by the purge (SQL) or by their key's TTL (Redis, in real
    // time); either way they are never live again, and fresh sessions stay.
    let now = t(100).plus(KEEP);
    if let Some(s) = store.session(&old.id).await.expect("read") {
        assert!(s.expires_at() <= now);
    }
    assert!(store.session(&fresh.id).await.expect("read").is_some());
    let live = store.live_sessions(&u, now).await.expect("live");
    assert_eq!(
        live.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![fresh.id]
    );
}

/// SQL backends delete expired rows in the purge itself (Redis leaves sessions to key TTLs).
pub async fn purge_deletes_expired_rows(store: impl TestStore) {
    let u = user(&store, "u").await;
    let old = session_at(&store, &u, 0).await; // expires at t(100)
    store
        .record(
            &[RevocationEntry::DeniedToken {
                jti: TokenId::random(),
                until: t(50),
            }],
            t(0),
        )
        .await
        .expect("record");
    let cursor = store.revocations_since(0, t(0)).await.expect("read").cursor;
    assert!(cursor > 0, "the log has its entry");
    let mut purged = 0;
    while let n @ 1.. = store
        .purge(t(100).plus(KEEP), KEEP, 1)
        .await
        .expect("purge")
    {
        purged += n;
    }
    assert_eq!(purged, 2, "the session and the entry, one row per batch");
    assert_eq!(store.session(&old.id).await.expect("read"), None);
    // The cursor taken before the log emptied stays valid: new entries come after it, and
    // sequence numbers are never reused.
    let entry = RevocationEntry::DeniedToken {
        jti: TokenId::random(),
        until: t(5000),
    };
    store
        .record(std::slice::from_ref(&entry), t(200))
        .await
        .expect("record");
    let after = store.revocations_since(cursor, t(200)).await.expect("read");
    assert_eq!(after.entries, vec![entry]);
}

/// A reader following the log from its cursor while many writers append at once sees every
/// entry: no entry may become visible below a cursor a reader has already passed.
pub async fn log_under_concurrent_writers(store: impl TestStore) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let store = Arc::new(store);
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for _ in 0..EACH {
                let entry = RevocationEntry::DeniedToken {
                    jti: TokenId::random(),
                    until: t(5000),
                };
                store
                    .record(std::slice::from_ref(&entry), t(0))
                    .await
                    .expect("record");
                written.push(entry);
            }
            written
        }));
    }
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0;
            while seen.len() < WRITERS * EACH {
                let batch = store.revocations_since(cursor, t(1)).await.expect("read");
                cursor = batch.cursor;
                seen.extend(batch.entries);
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reader saw every entry (an entry committed below its cursor is lost)")
        .expect("reader");
    let key = |e: &RevocationEntry| format!("{e:?}");
    let mut a: Vec<_> = written.iter().map(key).collect();
    let mut b: Vec<_> = seen.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "each entry seen exactly once");
}

/// `ping` answers on a healthy store.
pub async fn ping(store: impl TestStore) {
    store.ping().await.expect("ping");
}

/// Generates one `#[tokio::test]` per conformance case; `$make` is an async expression that
/// evaluates to `(fresh store, cleanup guard)`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            users, import_users, keyring, login_failures, sessions_round_trip, rotate_compare_and_set, rotate_concurrently,
            rotate_many_at_once,
            revoke_sessions, session_limit, revocation_log, purge, ping);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, guard) = $make.await;
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*
    };
}

/// The cases that hold for the SQL backends only (SQLite, PostgreSQL, MySQL): the purge deletes
/// rows itself, and the log stays gap-free under concurrent writers.
#[macro_export]
macro_rules! sql_conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            purge_deletes_expired_rows, log_under_concurrent_writers);
    };
}
