//! The conformance suite on a real 3-master Redis Cluster that this test starts on free loopback
//! ports and stops afterwards. Every case runs under its own key prefix.

use std::time::Duration;

use tessera_store::conformance::{self, Pair};
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;
use tessera_store::SessionStore as _;
use tessera_test_servers::RedisCluster;

async fn fresh(urls: &str, dir: &tempfile::TempDir, case: &str) -> Pair<SqliteStore, RedisStore> {
    let users = SqliteStore::open(&dir.path().join(format!("{case}.db")))
        .await
        .expect("sqlite");
    let options = RedisOptions {
        url: urls.to_owned(),
        prefix: format!("{case}:"),
        timeout: Duration::from_secs(2),
        accept_eviction: false,
        keep: Duration::from_secs(330),
        ca_file: None,
    };
    let sessions = RedisStore::connect(options).await.expect("connect");
    assert!(sessions.is_cluster());
    sessions.ping().await.expect("the cluster answers");
    Pair(users, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_conformance_suite_passes_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let dir = tempfile::tempdir().expect("tmp");
    conformance::users(fresh(&urls, &dir, "users").await).await;
    conformance::sessions_round_trip(fresh(&urls, &dir, "round").await).await;
    conformance::rotate_compare_and_set(fresh(&urls, &dir, "cas").await).await;
    conformance::rotate_concurrently(fresh(&urls, &dir, "race").await).await;
    conformance::revoke_sessions(fresh(&urls, &dir, "revoke").await).await;
    conformance::session_limit(fresh(&urls, &dir, "limit").await).await;
    conformance::revocation_log(fresh(&urls, &dir, "log").await).await;
    conformance::purge(fresh(&urls, &dir, "purge").await).await;
    conformance::ping(fresh(&urls, &dir, "ping").await).await;

    // Sessions really are spread over the masters (hash tags per session, not one slot).
    let keys_per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| n.cli(&["DBSIZE"]).expect("dbsize").parse().expect("number"))
        .collect();
    assert!(
        keys_per_node.iter().filter(|&&k| k > 0).count() >= 2,
        "{keys_per_node:?}"
    );
}

#[tokio::test]
async fn a_single_url_of_a_cluster_node_is_detected_as_a_cluster() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().expect("tmp");
    let store = fresh(&cluster.nodes[1].url(), &dir, "single").await;
    conformance::rotate_compare_and_set(store).await;
}
