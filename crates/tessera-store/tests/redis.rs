//! The conformance suite on Redis (the local server, `TESSERA_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379), each case under its own key prefix, deleted afterwards. Users live in
//! a temporary SQLite database, as in production. If Redis cannot be reached, the cases FAIL.

use std::time::Duration;

use tessera_store::conformance::Pair;
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;

fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key of one prefix when dropped.
struct Cleanup {
    url: String,
    prefix: String,
    _dir: tempfile::TempDir,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        tessera_test_servers::delete_redis_prefix(&self.url, &self.prefix);
    }
}

async fn fresh() -> (Pair<SqliteStore, RedisStore>, Cleanup) {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = SqliteStore::open(&dir.path().join("users.db"))
        .await
        .expect("sqlite");
    let prefix = format!("t{}:", uuid_like());
    let options = RedisOptions {
        url: redis_url(),
        prefix: prefix.clone(),
        timeout: Duration::from_secs(2),
        accept_eviction: false,
        keep: Duration::from_secs(330),
        ca_file: None,
    };
    let sessions = RedisStore::connect(options).await.expect("redis options");
    sessions
        .ping()
        .await
        .unwrap_or_else(|e| panic!("redis at {} is required for this suite: {e}", redis_url()));
    (
        Pair(users, sessions),
        Cleanup {
            url: redis_url(),
            prefix,
            _dir: dir,
        },
    )
}

fn uuid_like() -> String {
    tessera_core::ids::SessionId::random()
        .to_string()
        .replace(['-', '_'], "x")
}

use tessera_store::SessionStore as _;

tessera_store::conformance_tests!(fresh());

mod regressions {
    use std::time::Duration;

    use tessera_core::ids::{TokenId, UserId};
    use tessera_core::revocation::RevocationEntry;
    use tessera_core::session::{ClientInfo, Session, SessionPolicy};
    use tessera_core::Timestamp;
    use tessera_store::redis::{RedisOptions, RedisStore};
    use tessera_store::SessionStore as _;
    use tessera_test_servers::RedisServer;

    async fn store(redis: &RedisServer) -> RedisStore {
        let options = RedisOptions {
            url: redis.url(),
            prefix: "r:".into(),
            timeout: Duration::from_secs(2),
            accept_eviction: false,
            keep: Duration::from_secs(330),
            ca_file: None,
        };
        RedisStore::connect(options).await.expect("connect")
    }

    fn denied(n: u8) -> RevocationEntry {
        RevocationEntry::DeniedToken {
            jti: TokenId::from_bytes([n; 16]),
            until: Timestamp::from_secs(2_000_000_000),
        }
    }

    /// A log that lost its last appends (failover, restart) and then grew again is read from the
    /// start, so no entry written after the loss is skipped.
    #[tokio::test]
    async fn a_log_that_went_back_is_read_again_from_the_start() {
        let redis = RedisServer::start(&[]);
        let (writer, reader) = (store(&redis).await, store(&redis).await);
        let now = Timestamp::from_secs(1_900_000_000);
        writer
            .record(&[denied(1), denied(2), denied(3)], now)
            .await
            .expect("record");
        let first = reader.revocations_since(0, now).await.expect("read");
        assert_eq!(first.entries.len(), 3);

        // Lose the last append, as an asynchronous replica promoted to master would.
        redis
            .cli(&["ZPOPMAX", "{r:rev}:log"])
            .expect("lose the entry");
        redis
            .cli(&["SET", "{r:rev}:seq", "2"])
            .expect("roll the counter back");
        writer
            .record(&[denied(4)], now)
            .await
            .expect("record after the loss"); // seq 3 again

        let next = reader
            .revocations_since(first.cursor, now)
            .await
            .expect("read");
        assert!(
            next.entries.contains(&denied(4)),
            "the entry written after the loss is read: {:?}",
            next.entries
        );
    }

    /// The user's index outlives sessions that keep rotating past their first idle expiry.
    #[tokio::test]
    async fn the_user_index_lives_as_long_as_its_longest_possible_session() {
        let redis = RedisServer::start(&[]);
        let s = store(&redis).await;
        let policy = SessionPolicy {
            idle_ttl: Duration::from_secs(100),
            max_age: Duration::from_secs(10_000),
            grace: Duration::ZERO,
        };
        let user = UserId::random();
        let session = Session::new(
            user.clone(),
            "k".into(),
            ClientInfo::default(),
            &policy,
            Timestamp::from_secs(1_900_000_000),
        );
        s.create_session(&session, 10, Duration::from_secs(330))
            .await
            .expect("create");
        let ttl: i64 = redis
            .cli(&["PTTL", &format!("r:u:{{{user}}}")])
            .expect("pttl")
            .parse()
            .expect("number");
        assert!(
            ttl > 10_000_000,
            "index TTL {ttl} ms covers the absolute expiry"
        );
    }
    /// A logout leaves the session's id in its user's index (one round trip less); the next
    /// listing of the index drops it, and a login past the cap drops it too.
    #[tokio::test]
    async fn ended_sessions_leave_the_user_index_when_it_is_next_listed() {
        let redis = RedisServer::start(&[]);
        let s = store(&redis).await;
        let policy = SessionPolicy {
            idle_ttl: Duration::from_secs(100),
            max_age: Duration::from_secs(1000),
            grace: Duration::ZERO,
        };
        let keep = Duration::from_secs(330);
        let user = UserId::random();
        let now = Timestamp::from_secs(1_900_000_000);
        let new_session = || {
            Session::new(
                user.clone(),
                "k".into(),
                ClientInfo::default(),
                &policy,
                now,
            )
        };
        let index = format!("r:u:{{{user}}}");
        let indexed = || -> u64 {
            redis
                .cli(&["ZCARD", &index])
                .expect("zcard")
                .parse()
                .expect("number")
        };
        let (a, b) = (new_session(), new_session());
        for session in [&a, &b] {
            s.create_session(session, 2, keep).await.expect("create");
        }
        let ended = s
            .revoke_sessions(
                &tessera_store::SessionSelector::One(a.id),
                tessera_core::session::RevokeReason::Logout,
                now,
                keep,
            )
            .await
            .expect("revoke");
        assert_eq!(ended.len(), 1);
        assert_eq!(indexed(), 2, "the logout itself does not touch the index");
        let live = s.live_sessions(&user, now).await.expect("list");
        assert_eq!(live.iter().map(|x| x.id).collect::<Vec<_>>(), vec![b.id]);
        assert_eq!(indexed(), 1, "listing dropped the ended session");

        // Past the cap, a login lists the index: the oldest live session is ended and dropped.
        let (c, d) = (new_session(), new_session());
        for session in [&c, &d] {
            s.create_session(session, 2, keep).await.expect("create");
        }
        let live = s.live_sessions(&user, now).await.expect("list");
        assert_eq!(live.len(), 2, "the cap holds: {live:?}");
        assert_eq!(indexed(), 2);
    }
}
