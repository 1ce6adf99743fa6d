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
