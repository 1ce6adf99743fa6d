//! Interoperability with OAuth 2.0 and JWT libraries nobody here wrote (from PyPI and npm, pinned
//! in `tessera-test-servers/interop/`): Authlib's client refreshes, introspects and revokes;
//! PyJWT (Python) and jose (Node.js) verify access tokens of every published signing algorithm
//! through the JWKS and reject tampered ones.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use tessera_core::keys::SigningAlg;

use super::oauth::{spawn_oauth_app_with, OAuthApp, BACKEND};

/// A Tessera whose issuer is its real address (clients discover endpoints from it).
async fn spawn(alg: SigningAlg) -> (OAuthApp, String) {
    let port = tessera_test_servers::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let issuer = base.clone();
    let o = spawn_oauth_app_with(move |s| {
        s.listen = ([127, 0, 0, 1], port).into();
        s.issuer = Some(issuer);
        s.refresh_grace = std::time::Duration::ZERO;
        s.signing_alg = alg;
    })
    .await;
    assert_eq!(o.app.base, base);
    (o, base)
}

/// Runs `tests/interop/jwt_verify.mjs` with Node.js next to the pinned `node_modules`.
async fn node(args: Vec<String>) -> String {
    let script = format!(
        "{}/tests/interop/jwt_verify.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    tokio::task::spawn_blocking(move || {
        let dir = tessera_test_servers::node();
        let copy = dir.join("jwt_verify.mjs");
        std::fs::copy(&script, &copy).expect("copy the script");
        let out = Command::new("node")
            .arg(&copy)
            .args(&args)
            .output()
            .expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "jwt_verify.mjs failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    })
    .await
    .expect("node task")
}

/// Runs a script of `tests/interop` with the venv's Python, off the runtime's thread (the server
/// under test runs on it); its stdout, or a failure with everything it printed.
async fn python(script: &str, args: Vec<String>, stdin: String) -> String {
    let script = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    tokio::task::spawn_blocking(move || {
        let python = tessera_test_servers::python();
        let mut child = Command::new(python)
            .arg(&script)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("python output");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script} failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    })
    .await
    .expect("python task")
}

#[tokio::test]
async fn an_authlib_client_refreshes_introspects_and_revokes() {
    let (o, base) = spawn(SigningAlg::EdDSA).await;
    let first = o.session("alice", BACKEND).await;
    let fresh = o.login("alice", BACKEND).await;
    let stdin = format!(
        "{}\n",
        serde_json::json!({ "refresh_token": fresh.refresh })
    );
    let out = python(
        "oauth_client.py",
        vec![
            base,
            BACKEND.into(),
            o.secret.clone(),
            first.refresh.clone(),
            o.app.settings.audience.clone(),
        ],
        stdin,
    )
    .await;
    let result: serde_json::Value = serde_json::from_str(out.trim()).expect("script result");
    // What the library did holds on Tessera's own API.
    let revoked = result["revoked_access_token"].as_str().expect("token");
    assert_eq!(o.app.verify(revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        o.app.verify(&first.access).await,
        StatusCode::UNAUTHORIZED,
        "reuse revoked it"
    );
    assert_eq!(result["sub"], first.user_id.as_str());
}

#[tokio::test]
async fn pyjwt_and_jose_verify_every_signing_algorithm_through_the_jwks() {
    for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
        let (o, base) = spawn(alg).await;
        let t = o.session("alice", BACKEND).await;
        let args = vec![
            format!("{base}/.well-known/jwks.json"),
            base,
            o.app.settings.audience.clone(),
            t.access,
        ];
        let expected = format!("{alg} {}", t.user_id);
        let out = python("jwt_verify.py", args.clone(), String::new()).await;
        assert_eq!(out.trim(), expected, "PyJWT, {alg}");
        let out = node(args).await;
        assert_eq!(out.trim(), expected, "jose, {alg}");
    }
}
