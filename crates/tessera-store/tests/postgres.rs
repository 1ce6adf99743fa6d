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

/// The bus: an append on one instance raises the signal of another on the same database.
#[tokio::test]
async fn an_append_notifies_other_instances() {
    use tessera_core::ids::TokenId;
    use tessera_core::revocation::RevocationEntry;
    use tessera_core::Timestamp;
    use tessera_store::SessionStore as _;

    let (a, schema) = fresh().await;
    let b = PgStore::connect(&options(schema.url())).await.expect("b");
    let signal = b.revocation_signal().expect("postgres has a bus");
    // The listener raises the signal once it listens: wait for that first.
    tokio::time::timeout(std::time::Duration::from_secs(10), signal.notified())
        .await
        .expect("B listens");
    let entry = RevocationEntry::DeniedToken {
        jti: TokenId::random(),
        until: Timestamp::from_secs(4_000_000_000),
    };
    a.record(&[entry], Timestamp::from_secs(1_800_000_000))
        .await
        .expect("record");
    tokio::time::timeout(std::time::Duration::from_secs(10), signal.notified())
        .await
        .expect("B is told at once, not at its next poll");
}

/// A database restored from a backup has a log that went back below a reader's cursor: the
/// reader notices and reads the log again from its start, missing nothing written since.
#[tokio::test]
async fn a_log_that_went_back_is_read_again() {
    use tessera_core::ids::TokenId;
    use tessera_core::revocation::RevocationEntry;
    use tessera_core::Timestamp;
    use tessera_store::SessionStore as _;

    let (store, schema) = fresh().await;
    let now = Timestamp::from_secs(1_800_000_000);
    let entry = || RevocationEntry::DeniedToken {
        jti: TokenId::random(),
        until: Timestamp::from_secs(4_000_000_000),
    };
    store
        .record(&[entry(), entry(), entry()], now)
        .await
        .expect("record");
    let cursor = store.revocations_since(0, now).await.expect("read").cursor;
    assert_eq!(cursor, 3);
    // The restore: the log as it was before any entry.
    schema
        .psql("delete from revocations; update revocation_head set seq = 0")
        .expect("restore");
    let after = entry();
    store
        .record(std::slice::from_ref(&after), now)
        .await
        .expect("record");
    let batch = store.revocations_since(cursor, now).await.expect("read");
    assert_eq!(
        batch.entries,
        vec![after],
        "the entry below the old cursor is seen"
    );
    assert_eq!(batch.cursor, 1);
}
