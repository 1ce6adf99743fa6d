//! The tiered store: PostgreSQL as the source of truth (a schema per case), Redis in front (the
//! local server under a key prefix per case for the conformance suite; private servers where a
//! case flushes, kills or restarts Redis). If either cannot be reached, the cases FAIL.

use std::sync::Arc;
use std::time::Duration;

use tessera_store::conformance::Pair;
use tessera_store::redis::cache::SessionCache;
use tessera_store::redis::RedisOptions;
use tessera_store::sql::postgres::PgStore;
use tessera_store::sql::SqlOptions;
use tessera_store::tiered::TieredStore;
use tessera_test_servers::PgSchema;

const KEEP: Duration = Duration::from_secs(330);

fn options(url: String, prefix: String) -> RedisOptions {
    RedisOptions {
        url,
        prefix,
        timeout: Duration::from_millis(500),
        accept_eviction: false,
        keep: KEEP,
        ca_file: None,
    }
}

/// Deletes the case's schema and Redis keys when dropped.
struct Cleanup {
    _schema: PgSchema,
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        tessera_test_servers::delete_redis_prefix(&self.url, &self.prefix);
    }
}

async fn fresh() -> (Pair<PgStore, TieredStore>, Cleanup) {
    let schema = PgSchema::create();
    let sql = PgStore::connect(&SqlOptions::new(schema.url()))
        .await
        .expect("postgres");
    let url =
        std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("t{}:", tessera_core::ids::SessionId::random()).replace(['-', '_'], "x");
    let cache = SessionCache::connect(options(url.clone(), prefix.clone()))
        .await
        .expect("redis options");
    cache
        .ping()
        .await
        .unwrap_or_else(|e| panic!("redis at {url} is required for this suite: {e}"));
    let tiered = TieredStore::new(Arc::new(sql.clone()), cache, KEEP);
    (
        Pair(sql, tiered),
        Cleanup {
            _schema: schema,
            url,
            prefix,
        },
    )
}

tessera_store::conformance_tests!(fresh());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_under_concurrent_writers() {
    let (store, _guard) = fresh().await;
    tessera_store::conformance::log_under_concurrent_writers(store).await;
}

mod cache_faults {
    use super::*;
    use tessera_core::ids::UserId;
    use tessera_core::session::{ClientInfo, RevokeReason, Session, SessionPolicy};
    use tessera_core::Timestamp;
    use tessera_store::{NewUser, SessionSelector, SessionStore as _, UserStore as _};
    use tessera_test_servers::RedisServer;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(1_800_000_000 + secs)
    }

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle_ttl: Duration::from_secs(100),
            max_age: Duration::from_secs(1000),
            grace: Duration::from_secs(5),
        }
    }

    struct Setup {
        sql: Arc<PgStore>,
        tiered: TieredStore,
        redis: RedisServer,
        user: UserId,
        _schema: PgSchema,
    }

    async fn setup() -> Setup {
        let schema = PgSchema::create();
        let sql = Arc::new(
            PgStore::connect(&SqlOptions::new(schema.url()))
                .await
                .expect("postgres"),
        );
        let redis = RedisServer::start(&[]);
        let cache = SessionCache::connect(options(redis.url(), "t:".into()))
            .await
            .expect("redis");
        let tiered = TieredStore::new(sql.clone(), cache, KEEP);
        let user = sql
            .create_user(
                &NewUser {
                    username: "u".into(),
                    password_hash: None,
                    roles: vec![],
                },
                t(0),
            )
            .await
            .expect("user")
            .id;
        Setup {
            sql,
            tiered,
            redis,
            user,
            _schema: schema,
        }
    }

    async fn login(s: &Setup, at: i64) -> Session {
        let session = Session::new(
            s.user.clone(),
            "k1".into(),
            ClientInfo::default(),
            &policy(),
            t(at),
        );
        s.tiered
            .create_session(&session, 100, KEEP)
            .await
            .expect("create");
        session
    }

    #[tokio::test]
    async fn a_flushed_cache_loses_no_session_and_revives_none() {
        let s = setup().await;
        let live = login(&s, 0).await;
        let mut current = live.clone();
        for i in 1..=3 {
            let next = current.rotated(&policy(), t(i));
            assert!(s
                .tiered
                .rotate(&next, current.generation)
                .await
                .expect("rotate"));
            current = next;
        }
        let dead = login(&s, 0).await;
        s.tiered
            .revoke_sessions(
                &SessionSelector::One(dead.id),
                RevokeReason::Logout,
                t(5),
                KEEP,
            )
            .await
            .expect("revoke");

        s.redis.cli(&["FLUSHALL"]).expect("flushall");

        assert_eq!(
            s.tiered.session(&live.id).await.expect("read"),
            Some(current.clone()),
            "refilled from SQL at its newest generation"
        );
        let next = current.rotated(&policy(), t(6));
        assert!(s
            .tiered
            .rotate(&next, current.generation)
            .await
            .expect("rotate"));
        let revoked = s
            .tiered
            .session(&dead.id)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(
            revoked.revoked.map(|r| r.reason),
            Some(RevokeReason::Logout)
        );
        assert!(
            !s.tiered
                .rotate(&dead.rotated(&policy(), t(7)), 0)
                .await
                .expect("rotate"),
            "a revoked session stays dead"
        );
    }

    #[tokio::test]
    async fn a_copy_behind_the_source_is_caught_up() {
        let s = setup().await;
        let session = login(&s, 0).await;
        // Rotated in SQL only (as while Redis was unreachable): the copy is one behind.
        let next = session.rotated(&policy(), t(1));
        assert!(s.sql.rotate(&next, 0).await.expect("rotate"));
        assert_eq!(
            s.tiered.session(&session.id).await.expect("read"),
            Some(session.clone()),
            "the cache answers first"
        );
        assert!(s.tiered.caches_sessions(), "so callers confirm verdicts");
        assert_eq!(
            s.tiered
                .session_from_source(&session.id)
                .await
                .expect("read"),
            Some(next.clone())
        );
        assert_eq!(
            s.tiered.session(&session.id).await.expect("read"),
            Some(next.clone()),
            "the source read refreshed the copy"
        );

        // A rotation decided on a stale copy loses the compare-and-set and catches the copy up.
        let newer = next.rotated(&policy(), t(2));
        assert!(s.sql.rotate(&newer, 1).await.expect("rotate"));
        assert!(!s
            .tiered
            .rotate(&next.rotated(&policy(), t(3)), 1)
            .await
            .expect("lost"));
        assert_eq!(
            s.tiered.session(&session.id).await.expect("read"),
            Some(newer)
        );
    }

    #[tokio::test]
    async fn a_refill_never_overwrites_a_tombstone() {
        let s = setup().await;
        let session = login(&s, 0).await;
        s.redis.cli(&["FLUSHALL"]).expect("flushall");
        s.tiered
            .revoke_sessions(
                &SessionSelector::One(session.id),
                RevokeReason::ForcedLogout,
                t(1),
                KEEP,
            )
            .await
            .expect("revoke");
        // A refill that read SQL before the revocation and writes after it.
        let cache = SessionCache::connect(options(s.redis.url(), "t:".into()))
            .await
            .expect("redis");
        assert!(
            !cache.put(&session, t(0)).await.expect("put"),
            "the tombstone wins"
        );
        let read = s
            .tiered
            .session(&session.id)
            .await
            .expect("read")
            .expect("kept");
        assert!(read.revoked.is_some());
    }

    #[tokio::test]
    async fn redis_down_serves_from_sql_and_comes_back() {
        let mut s = setup().await;
        let session = login(&s, 0).await;
        s.redis.kill();
        let started = std::time::Instant::now();
        let next = session.rotated(&policy(), t(1));
        assert!(s.tiered.rotate(&next, 0).await.expect("rotate from SQL"));
        assert_eq!(
            s.tiered.session(&session.id).await.expect("read"),
            Some(next.clone())
        );
        let other = login(&s, 2).await;
        s.tiered
            .revoke_sessions(
                &SessionSelector::One(other.id),
                RevokeReason::Logout,
                t(3),
                KEEP,
            )
            .await
            .expect("revoke from SQL");
        s.tiered.ping().await.expect("SQL answers");
        assert!(
            s.tiered.degraded().is_some(),
            "readyz reports the cache down"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a dead cache is skipped, not waited for on every call"
        );

        s.redis.restart();
        tokio::time::sleep(tessera_store::tiered::COOL_DOWN + Duration::from_millis(200)).await;
        let mut healthy = false;
        for _ in 0..50 {
            if s.tiered.degraded().is_none() {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            healthy,
            "the background probe finds Redis back, with no traffic"
        );
        let after = next.rotated(&policy(), t(4));
        assert!(s.tiered.rotate(&after, 1).await.expect("rotate"));
        assert_eq!(
            s.tiered.session(&session.id).await.expect("read"),
            Some(after)
        );
    }
}
