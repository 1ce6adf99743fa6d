//! The conformance suite on the embedded SQLite store, one fresh database per case.

use tessera_store::sqlite::SqliteStore;

async fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .expect("open");
    (store, dir)
}

tessera_store::conformance_tests!(fresh());

/// SQLite deletes expired rows in the purge itself (Redis leaves sessions to key TTLs).
#[tokio::test]
async fn the_purge_deletes_expired_sessions_and_entries() {
    use std::time::Duration;
    use tessera_core::ids::TokenId;
    use tessera_core::revocation::RevocationEntry;
    use tessera_core::session::{ClientInfo, Session, SessionPolicy};
    use tessera_core::Timestamp;
    use tessera_store::{NewUser, SessionStore as _, UserStore as _};

    let (store, _dir) = fresh().await;
    let t = |s: i64| Timestamp::from_secs(1_800_000_000 + s);
    let keep = Duration::from_secs(330);
    let user = store
        .create_user(
            &NewUser {
                username: "u".into(),
                password_hash: None,
                roles: vec![],
            },
            t(0),
        )
        .await
        .expect("user");
    let policy = SessionPolicy {
        idle_ttl: Duration::from_secs(100),
        max_age: Duration::from_secs(1000),
        grace: Duration::ZERO,
    };
    let old = Session::new(
        user.id.clone(),
        "k".into(),
        ClientInfo::default(),
        &policy,
        t(0),
    );
    store.create_session(&old, 10, keep).await.expect("session");
    let entry = RevocationEntry::DeniedToken {
        jti: TokenId::random(),
        until: t(50),
    };
    store.record(&[entry], t(0)).await.expect("record");
    let mut purged = 0;
    while let n @ 1.. = store
        .purge(t(100).plus(keep), keep, 1)
        .await
        .expect("purge")
    {
        purged += n;
    }
    assert_eq!(purged, 2);
    assert_eq!(store.session(&old.id).await.expect("read"), None);
}
