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
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut con) = client.get_connection() else {
            return;
        };
        for pattern in [
            format!("{}*", self.prefix),
            format!("{{{}rev}}*", self.prefix),
        ] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut con)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut con);
            }
        }
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
