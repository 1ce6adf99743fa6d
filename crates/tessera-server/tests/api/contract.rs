//! SECURITY F9: schemathesis (from PyPI) generates requests from `/openapi.json`, valid and
//! invalid, and sends them to a live server: no answer may be a 5xx, and every answer must have
//! a documented status, content type and shape. With the admin key as bearer, so the admin
//! operations are reached too.

use std::process::Command;

use tessera_test_support::ADMIN_KEY;

use super::spawn_app;

/// Runs schemathesis against `base` with `args`; the report on failure.
fn schemathesis(base: &str, config: Option<&str>, args: &[&str]) -> Result<(), String> {
    let python = tessera_test_servers::python();
    let st = python.with_file_name("st");
    // schemathesis keeps a cache in its working directory: a temporary one, not the repo.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut command = Command::new(st);
    if let Some(config) = config {
        command.args(["--config-file", config]);
    }
    let out = command
        .current_dir(scratch.path())
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(args)
        .args(["--seed", "20261202", "--workers", "1", "--header"])
        .arg(format!("Authorization: Bearer {ADMIN_KEY}"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_the_api_holds_its_openapi_contract_under_generated_requests() {
    let app = spawn_app().await;
    app.user("alice").await;
    let base = app.base.clone();
    // Any text (Unicode included): never a 5xx, and every answer as documented.
    let result = tokio::task::spawn_blocking(move || {
        schemathesis(
            &base,
            None,
            &[
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                "15",
                "--phases",
                "examples,coverage,fuzzing",
            ],
        )
    })
    .await
    .expect("schemathesis task");
    if let Err(report) = result {
        panic!("schemathesis found problems:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_every_check_holds_the_stateful_phase_included() {
    let app = tessera_test_support::spawn_app_with(|s| {
        // Generated logins come from one address: the per-address budget is another test's.
        s.login_address_limit = 0;
    })
    .await;
    app.user("alice").await;
    let base = app.base.clone();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml");
    // Every check: schema-valid data accepted, invalid data refused, auth required where the
    // document says, resources gone after a delete (stateful phase, links inferred from the
    // paths). ASCII text, so that the document's length limits (characters) and the server's
    // (bytes, for passwords) say the same.
    let result = tokio::task::spawn_blocking(move || {
        schemathesis(
            &base,
            Some(config),
            &[
                "--checks",
                "all",
                "--max-examples",
                "6",
                "--generation-codec",
                "ascii",
            ],
        )
    })
    .await
    .expect("schemathesis task");
    if let Err(report) = result {
        panic!("schemathesis found problems:\n{report}");
    }
}
