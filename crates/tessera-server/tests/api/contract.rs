//! SECURITY F9: schemathesis (from PyPI) generates requests from `/openapi.json`, valid and
//! invalid, and sends them to a live server: no answer may be a 5xx, and every answer must have
//! a documented status, content type and shape. With the admin key as bearer, so the admin
//! operations are reached too.

use std::process::Command;

use tessera_test_support::ADMIN_KEY;

use super::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_the_api_holds_its_openapi_contract_under_generated_requests() {
    let app = spawn_app().await;
    app.user("alice").await;
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        let python = tessera_test_servers::python();
        let st = python.with_file_name("st");
        // schemathesis keeps a cache in its working directory: a temporary one, not the repo.
        let scratch = tempfile::tempdir().expect("scratch dir");
        Command::new(st)
            .current_dir(scratch.path())
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                "15",
                "--seed",
                "20261202",
                "--workers",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--header",
            ])
            .arg(format!("Authorization: Bearer {ADMIN_KEY}"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("schemathesis task");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
}
