//! `rediss://`: the store over TLS against a private redis-server with a certificate from a CA
//! this test makes (openssl), trusted through `ca_file`; and refused without it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tessera_store::conformance::{self, Pair};
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;
use tessera_store::SessionStore as _;
use tessera_test_servers::{free_port, RedisServer};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=Tessera Test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

fn options(url: String, ca_file: Option<std::path::PathBuf>) -> RedisOptions {
    RedisOptions {
        url,
        prefix: "tls:".into(),
        timeout: Duration::from_secs(2),
        accept_eviction: false,
        keep: Duration::from_secs(330),
        ca_file,
    }
}

#[tokio::test]
async fn the_store_works_over_tls_with_a_trusted_ca_only() {
    let certs = tempfile::tempdir().expect("tmp");
    make_certificates(certs.path());
    let tls_port = free_port().to_string();
    let file = |name: &str| certs.path().join(name).display().to_string();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let redis = RedisServer::start(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}");

    let trusted = RedisStore::connect(options(url.clone(), Some(ca.clone().into())))
        .await
        .expect("connect");
    trusted.ping().await.expect("TLS with the CA works");
    let users = SqliteStore::open(&certs.path().join("users.db"))
        .await
        .expect("sqlite");
    conformance::rotate_concurrently(Pair(users, trusted)).await;
    let plain_keys = redis.cli(&["DBSIZE"]).expect("dbsize");
    assert_ne!(plain_keys, "0", "the data went to this server");

    // Without the CA the certificate is not trusted: unavailable, never a silent plain connection.
    let untrusted = RedisStore::connect(options(url, None))
        .await
        .expect("starts, not ready");
    assert!(untrusted.ping().await.is_err());
}
