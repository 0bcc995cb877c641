//! The Services API against another language's implementation: nats.py's
//! `nats.micro` discovers a nats-otel service beside a nats.py service with one
//! `$SRV.PING`, parses its INFO and STATS with its own response types, and
//! its requests show in STATS. Needs `python3` with nats-py (`scripts/test`
//! installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use nats_otel_runtime::prelude::*;
use serde_json::Value;

#[nats_subscribe("quotes.get", queue = "pricing")]
async fn quote(body: Bytes) -> Bytes {
    body
}

#[tokio::test]
async fn nats_py_discovers_parses_and_counts_a_nats_otel_service() {
    let h = start().await;
    let running = spawn(
        NatsService::new(h.client.clone())
            .name("pricing")
            .version("1.2.0")
            .description("Prices")
            .handler(quote),
    )
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/micro_interop.py");
    let output = within_secs(
        60,
        "the nats.py client",
        tokio::process::Command::new("python3").arg(script).env("NATS_URL", h.server.url()).output(),
    )
    .await
    .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nats.py failed (is nats-py installed? scripts/test installs it):\n{stderr}"
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    assert_eq!(seen["pinged"], serde_json::json!(["pricing", "pyservice"]), "one discovery, both services");
    assert_eq!(seen["ping_types"], serde_json::json!(["io.nats.micro.v1.ping_response"]));
    assert_eq!(seen["info_endpoints"], serde_json::json!([["quote", "quotes.get", "pricing"]]));
    assert_eq!(seen["info_description"], "Prices");
    assert!(seen["started_year"].as_u64().unwrap() >= 2026, "{seen}");
    assert_eq!(seen["quote_requests_before"], 0);
    assert_eq!(seen["quote_requests_after"], 2, "the Python client's requests are counted");
    running.stop().await.unwrap();
}
