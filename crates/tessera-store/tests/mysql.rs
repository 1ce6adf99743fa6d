//! The conformance suite on MySQL/MariaDB (the local server, `TESSERA_TEST_MYSQL_URL`), each
//! case in a database of its own, dropped afterwards. If the server cannot be reached, the cases
//! FAIL.

use tessera_store::sql::mysql::MySqlStore;
use tessera_store::sql::SqlOptions;
use tessera_test_servers::MySqlDatabase;

/// Generous bounds: the cases share two cores with each other.
fn options(url: String) -> SqlOptions {
    SqlOptions {
        timeout: std::time::Duration::from_secs(10),
        ..SqlOptions::new(url)
    }
}

async fn fresh() -> (MySqlStore, MySqlDatabase) {
    let db = MySqlDatabase::create();
    let store = MySqlStore::connect(&options(db.url()))
        .await
        .expect("connect and migrate");
    (store, db)
}

tessera_store::conformance_tests!(fresh());
tessera_store::sql_conformance_tests!(fresh());
