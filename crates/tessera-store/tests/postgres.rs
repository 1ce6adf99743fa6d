//! The conformance suite on PostgreSQL (the local server, `TESSERA_TEST_PG_URL`), each case in
//! a schema of its own, dropped afterwards. If PostgreSQL cannot be reached, the cases FAIL.

use tessera_store::sql::postgres::PgStore;
use tessera_store::sql::SqlOptions;
use tessera_test_servers::PgSchema;

/// Generous bounds: the cases share two cores with each other.
fn options(url: String) -> SqlOptions {
    SqlOptions {
        timeout: std::time::Duration::from_secs(10),
        ..SqlOptions::new(url)
    }
}

async fn fresh() -> (PgStore, PgSchema) {
    let schema = PgSchema::create();
    let store = PgStore::connect(&options(schema.url()))
        .await
        .expect("connect and migrate");
    (store, schema)
}

tessera_store::conformance_tests!(fresh());
tessera_store::sql_conformance_tests!(fresh());
