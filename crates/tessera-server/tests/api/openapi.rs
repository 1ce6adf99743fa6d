//! `/openapi.json` documents exactly the routes the server has: every documented operation is
//! routed (neither "no such route" nor 405), and every route in the source is documented.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tessera_test_support::json_body;

use super::spawn_app;

/// The `.route("…", …)` paths of the router's source files.
fn routes_in_source() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut files = vec![std::path::PathBuf::from(dir)];
    let mut routes = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("dir") {
                files.push(entry.expect("entry").path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            for part in text.split(".route(\"").skip(1) {
                routes.push(part.split('"').next().expect("path").to_owned());
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_routed() {
    let app = spawn_app().await;
    let r = app
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .expect("openapi");
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = json_body(r).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");

    let routes = routes_in_source();
    assert!(routes.len() > 20, "{routes:?}");
    for route in &routes {
        assert!(
            paths.contains_key(route),
            "{route} is routed but not documented"
        );
    }

    for (path, operations) in paths {
        let concrete = path
            .replace("{sid}", "AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{user}", "nobody");
        for method in operations.as_object().expect("operations").keys() {
            let method: Method = method.to_uppercase().parse().expect("method");
            let r = app
                .request(method.clone(), &concrete)
                .send()
                .await
                .expect("request");
            assert_ne!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
            let body = r.text().await.unwrap_or_default();
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
}
