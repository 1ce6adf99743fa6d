//! A resource server guarded by Tessera, verifying tokens locally.
//!
//! ```text
//! # a Tessera with a verifier key
//! TESSERA_VERIFIER_KEY=$(openssl rand -base64 32) cargo run -p tessera-cli -- serve
//! # this server, on 127.0.0.1:3000
//! TESSERA_URL=http://127.0.0.1:8080 TESSERA_VERIFIER_KEY=... \
//!     cargo run -p tessera-verify --example resource_server
//! curl -H "Authorization: Bearer $ACCESS" http://127.0.0.1:3000/orders
//! ```
//!
//! Settings (environment): `TESSERA_URL` (default `http://127.0.0.1:8080`),
//! `TESSERA_VERIFIER_KEY` (required), `TESSERA_ISSUER` (default: the URL, which is Tessera's own
//! default issuer), `TESSERA_AUDIENCE` (default `tessera`), `LISTEN` (default `127.0.0.1:3000`).

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tessera_verify::{Claims, Config, RequireBearer, Verifier};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A protected resource: the verified claims say who is asking.
async fn orders(Claims(claims): Claims) -> Json<Value> {
    Json(json!({ "user": claims.sub, "session": claims.sid, "orders": [] }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = env("TESSERA_URL", "http://127.0.0.1:8080");
    let key = std::env::var("TESSERA_VERIFIER_KEY")
        .map_err(|_| "set TESSERA_VERIFIER_KEY to Tessera's verifier_key")?;
    let config = Config::new(
        url.clone(),
        key,
        env("TESSERA_ISSUER", &url),
        env("TESSERA_AUDIENCE", "tessera"),
    );
    let verifier = Verifier::start(config)?;
    if !verifier.ready(Duration::from_secs(10)).await {
        eprintln!("Tessera at {url} is not answering yet; requests get 503 until it does");
    }
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(RequireBearer::new(verifier.clone()))
        // Not guarded: for a load balancer.
        .route(
            "/healthz",
            get(move || {
                let fresh = verifier.status().fresh;
                async move { Json(json!({ "revocations_fresh": fresh })) }
            }),
        );
    let listen = env("LISTEN", "127.0.0.1:3000");
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("resource server on http://{listen}/orders");
    axum::serve(listener, app).await?;
    Ok(())
}
