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
tessera_store::sql_conformance_tests!(fresh());

mod group_commit {
    use std::sync::Arc;
    use std::time::Duration;

    use tessera_core::ids::UserId;
    use tessera_core::session::{ClientInfo, Session, SessionPolicy};
    use tessera_core::Timestamp;
    use tessera_store::sqlite::SqliteStore;
    use tessera_store::{NewUser, SessionStore, StoreError, UserStore};

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle_ttl: Duration::from_secs(100),
            max_age: Duration::from_secs(1000),
            grace: Duration::from_secs(5),
        }
    }

    async fn sessions(store: &SqliteStore, n: usize) -> Vec<Session> {
        let now = Timestamp::from_secs(1_800_000_000);
        let user: UserId = store
            .create_user(
                &NewUser {
                    username: "u".into(),
                    password_hash: None,
                    roles: vec![],
                },
                now,
            )
            .await
            .expect("user")
            .id;
        let mut out = Vec::new();
        for _ in 0..n {
            let client = ClientInfo {
                client_id: "tessera".into(),
                user_agent: None,
                ip: None,
            };
            let s = Session::new(user.clone(), "k1".into(), client, &policy(), now);
            store
                .create_session(&s, 1000, Duration::from_secs(60))
                .await
                .expect("session");
            out.push(s);
        }
        out
    }

    /// Rotations committed in shared transactions are all on disk once acknowledged: the file,
    /// opened again after the store is dropped, holds every acknowledged generation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn acknowledged_rotations_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tessera.db");
        let store = Arc::new(SqliteStore::open(&path).await.expect("open"));
        let all = sessions(&store, 32).await;
        let mut tasks = Vec::new();
        for s in all.clone() {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut current = s;
                for step in 1..=10 {
                    let next = current.rotated(
                        &policy(),
                        current.created_at.plus(Duration::from_secs(step)),
                    );
                    assert!(store
                        .rotate(&next, current.generation)
                        .await
                        .expect("rotate"));
                    current = next;
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        store.close().await;
        drop(store);
        let reopened = SqliteStore::open(&path).await.expect("reopen");
        for s in &all {
            let stored = reopened
                .session(&s.id)
                .await
                .expect("read")
                .expect("exists");
            assert_eq!(
                stored.generation, 10,
                "every acknowledged rotation is stored"
            );
        }
    }

    /// A rotation the store cannot commit is answered as unavailable (503), never as done.
    #[tokio::test]
    async fn a_closed_store_answers_unavailable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("tessera.db"))
            .await
            .expect("open");
        let s = sessions(&store, 1).await.remove(0);
        store.close().await;
        let next = s.rotated(&policy(), s.created_at.plus(Duration::from_secs(1)));
        assert!(matches!(
            store.rotate(&next, 0).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
