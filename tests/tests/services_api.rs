//! The NATS Services API (ADR-32): a named service answers `$SRV.PING`,
//! `$SRV.INFO` and `$SRV.STATS` on all three subject forms, with counts kept
//! by the path that records the metrics; identities are checked; the
//! responses validate against the official JSON schemas; control requests are
//! not traced; hostile control requests change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::*;
use futures_util::StreamExt;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::{ServeErrorKind, ServiceHandle};
use serde_json::Value;

#[nats_subscribe("quotes.get", queue = "pricing")]
async fn quote(body: Bytes) -> Bytes {
    body
}

#[nats_subscribe("quotes.fail")]
async fn refuse() -> Result<(), ServiceError> {
    Err(ServiceError::new(503, "pricing is closed"))
}

#[jetstream_consumer(stream = "PRICES", durable = "archiver", filter = "prices.>")]
async fn archive(_body: Bytes) {}

async fn request_json(client: &async_nats::Client, subject: &str) -> Value {
    let reply = within(subject, client.request(subject.to_owned(), Bytes::new())).await.unwrap();
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{subject}: {e}"))
}

async fn pricing(h: &Harness) -> ServiceHandle {
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "PRICES".into(),
            subjects: vec!["prices.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    spawn(
        NatsService::new(h.client.clone())
            .name("pricing")
            .version("1.2.0-rc.1")
            .description("Prices and quotes")
            .metadata("team", "payments")
            .handler(quote)
            .handler(refuse)
            .handler(archive),
    )
    .await
}

fn endpoint<'a>(endpoints: &'a Value, name: &str) -> &'a Value {
    endpoints
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {endpoints}"))
}

#[tokio::test]
async fn a_named_service_answers_ping_info_and_stats_on_every_subject_form() {
    let h = start().await;
    let running = pricing(&h).await;
    let id = running.id().to_owned();

    for verb in ["PING", "INFO", "STATS"] {
        let kind = format!("io.nats.micro.v1.{}_response", verb.to_lowercase());
        for subject in
            [format!("$SRV.{verb}"), format!("$SRV.{verb}.pricing"), format!("$SRV.{verb}.pricing.{id}")]
        {
            let response = request_json(&h.client, &subject).await;
            assert_eq!(response["type"], kind.as_str(), "{subject}: {response}");
            assert_eq!(response["name"], "pricing");
            assert_eq!(response["id"], id.as_str());
            assert_eq!(response["version"], "1.2.0-rc.1");
            assert_eq!(response["metadata"]["team"], "payments");
        }
    }

    let info = request_json(&h.client, "$SRV.INFO.pricing").await;
    assert_eq!(info["description"], "Prices and quotes");
    let endpoints = &info["endpoints"];
    assert_eq!(endpoints.as_array().unwrap().len(), 3, "{endpoints}");
    let quote = endpoint(endpoints, "quote");
    assert_eq!(
        (&quote["subject"], &quote["queue_group"]),
        (&Value::from("quotes.get"), &Value::from("pricing"))
    );
    assert_eq!(endpoint(endpoints, "refuse")["subject"], "quotes.fail");
    let archive = endpoint(endpoints, "archive");
    assert_eq!(
        (&archive["subject"], &archive["queue_group"]),
        (&Value::from("prices.>"), &Value::from("archiver"))
    );
    assert_eq!(archive["metadata"]["nats_otel.kind"], "jetstream_consumer");
    assert_eq!(archive["metadata"]["nats_otel.stream"], "PRICES");

    // Three quotes, two refusals, one stored price.
    for _ in 0..3 {
        h.client.request("quotes.get", "q".into()).await.unwrap();
    }
    for _ in 0..2 {
        let refused = h.client.request("quotes.fail", "q".into()).await.unwrap();
        assert_eq!(refused.headers.unwrap().get("Nats-Service-Error-Code").unwrap().as_str(), "503");
    }
    jetstream::new(h.client.clone()).publish("prices.eu", "p".into()).await.unwrap().await.unwrap();
    let processed = |stats: &[(nats_otel_runtime::EndpointInfo, nats_otel_runtime::StatsSnapshot)]| {
        stats.iter().find(|(info, _)| info.name == "archive").is_some_and(|(_, s)| s.requests == 1)
    };
    within("the consumer processes its message", async {
        while !processed(&running.stats()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let stats = request_json(&h.client, &format!("$SRV.STATS.pricing.{id}")).await;
    let started = stats["started"].as_str().unwrap();
    assert!(started.ends_with('Z') && started.len() == "2026-11-27T23:40:01.123456Z".len(), "{started}");
    let endpoints = &stats["endpoints"];
    let quote = endpoint(endpoints, "quote");
    assert_eq!((quote["num_requests"].as_u64(), quote["num_errors"].as_u64()), (Some(3), Some(0)));
    assert_eq!(quote["last_error"], "");
    let total = quote["processing_time"].as_u64().unwrap();
    assert!(total > 0);
    assert_eq!(quote["average_processing_time"].as_u64().unwrap(), total / 3);
    let refuse = endpoint(endpoints, "refuse");
    assert_eq!((refuse["num_requests"].as_u64(), refuse["num_errors"].as_u64()), (Some(2), Some(2)));
    assert_eq!(refuse["last_error"], "503: pricing is closed");
    assert_eq!(endpoint(endpoints, "archive")["num_requests"], 1);

    // The handle's reset, seen by the next STATS.
    running.reset_stats();
    let stats = request_json(&h.client, "$SRV.STATS.pricing").await;
    for endpoint in stats["endpoints"].as_array().unwrap() {
        assert_eq!((&endpoint["num_requests"], &endpoint["num_errors"]), (&Value::from(0), &Value::from(0)));
        assert_eq!(
            (&endpoint["processing_time"], &endpoint["last_error"]),
            (&Value::from(0), &Value::from(""))
        );
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn control_requests_are_not_traced_and_every_instance_answers_a_discovery() {
    let h = start().await;
    let first = pricing(&h).await;
    let second =
        spawn(NatsService::new(h.client.clone()).name("pricing").version("1.2.0").handler(quote)).await;
    let other = spawn(NatsService::new(h.client.clone()).name("billing").version("0.1.0")).await;

    // One discovery, every instance: collect the answers to a single ping.
    let inbox = h.client.new_inbox();
    let mut answers = h.client.subscribe(inbox.clone()).await.unwrap();
    h.client.publish_with_reply("$SRV.PING", inbox.clone(), Bytes::new()).await.unwrap();
    let mut ids = Vec::new();
    while let Ok(Some(answer)) = tokio::time::timeout(Duration::from_millis(500), answers.next()).await {
        let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
        ids.push((answer["name"].as_str().unwrap().to_owned(), answer["id"].as_str().unwrap().to_owned()));
    }
    ids.sort();
    let mut expected = vec![
        ("billing".to_owned(), other.id().to_owned()),
        ("pricing".to_owned(), first.id().to_owned()),
        ("pricing".to_owned(), second.id().to_owned()),
    ];
    expected.sort();
    assert_eq!(ids, expected);

    // By name: both pricing instances; by id: one.
    h.client.publish_with_reply("$SRV.PING.pricing", inbox.clone(), Bytes::new()).await.unwrap();
    let mut by_name = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), answers.next()).await {
        by_name += 1;
    }
    assert_eq!(by_name, 2);

    // A request is traced, the control traffic is not.
    h.client.request("quotes.get", "q".into()).await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "process quotes.get") == 1).await;
    assert!(spans.iter().all(|s| !s.name.contains("$SRV")), "{:?}", names(&spans));
    for running in [first, second, other] {
        running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn hostile_control_requests_change_nothing() {
    let h = start().await;
    let running = pricing(&h).await;
    // No reply subject, a payload where none is expected, a subject one token too long.
    h.client.publish("$SRV.PING", Bytes::new()).await.unwrap();
    h.client.request("$SRV.INFO.pricing", vec![0xff; 4096].into()).await.unwrap();
    let too_long = format!("$SRV.STATS.pricing.{}.extra", running.id());
    let answered = h.client.request(too_long, Bytes::new()).await;
    assert!(answered.is_err(), "nothing listens one token deeper");
    let stats = request_json(&h.client, "$SRV.STATS.pricing").await;
    assert!(
        stats["endpoints"].as_array().unwrap().iter().all(|e| e["num_requests"] == 0),
        "control traffic is not counted as requests: {stats}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_unnamed_service_is_not_discoverable() {
    let h = start().await;
    let running = spawn(NatsService::new(h.client.clone()).handler(quote)).await;
    let ping = h.client.request("$SRV.PING", Bytes::new()).await;
    assert!(ping.is_err(), "no responders: {ping:?}");
    assert!(!running.id().is_empty(), "an id all the same, for the handle's stats");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn identities_breaking_adr_32_fail_start_saying_how_to_fix_them() {
    let h = start().await;
    let cases = [
        (NatsService::new(h.client.clone()).name("pricing.eu").version("1.0.0"), "`.` is not allowed"),
        (NatsService::new(h.client.clone()).name("pricing").version("1.2"), "not a semantic version"),
        (NatsService::new(h.client.clone()).name("pricing"), "has no version"),
        (NatsService::new(h.client.clone()).version("1.0.0"), "without a name"),
        (NatsService::new(h.client.clone()).name("").version("1.0.0"), "must not be empty"),
    ];
    for (service, says) in cases {
        let error = service.handler(quote).start().await.unwrap_err();
        assert_eq!(error.kind(), ServeErrorKind::InvalidIdentity);
        let chain = format!(
            "{error} {}",
            std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default()
        );
        assert!(chain.contains(says), "{chain}");
    }
}

/// Runs the official schemas (tests/schemas/micro/v1) over `responses` with
/// Python's `jsonschema`: whether all are valid, and what it printed.
fn official_schemas(responses: &[(&str, &Value)]) -> (bool, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = responses
        .iter()
        .map(|(name, response)| {
            let file = dir.path().join(format!("{name}.json"));
            std::fs::write(&file, response.to_string()).unwrap();
            file
        })
        .collect();
    let output = std::process::Command::new("python3")
        .arg(root.join("python/micro_schemas.py"))
        .arg(root.join("schemas/micro/v1"))
        .args(&files)
        .output()
        .expect("python3 runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn responses_validate_against_the_official_json_schemas() {
    let h = start().await;
    let running = pricing(&h).await;
    // Counts, an error and its last_error, so STATS has every field filled in.
    within("quote", h.client.request("quotes.get", Bytes::from_static(b"1"))).await.unwrap();
    within("refuse", h.client.request("quotes.fail", Bytes::new())).await.unwrap();

    let ping = request_json(&h.client, "$SRV.PING.pricing").await;
    let info = request_json(&h.client, "$SRV.INFO.pricing").await;
    let stats = request_json(&h.client, "$SRV.STATS.pricing").await;
    let (valid, output) = official_schemas(&[("ping", &ping), ("info", &info), ("stats", &stats)]);
    assert!(valid, "{output}");
    assert_eq!(output.matches(": valid io.nats.micro.v1.").count(), 3, "{output}");

    // The check can fail: a name with a dot, a `started` that is no date-time,
    // a count that is not a number.
    let mut bad_ping = ping.clone();
    bad_ping["name"] = "pricing.eu".into();
    let mut bad_stats = stats.clone();
    bad_stats["started"] = "yesterday".into();
    bad_stats["endpoints"][0]["num_requests"] = "many".into();
    let (valid, output) = official_schemas(&[("bad_ping", &bad_ping), ("bad_stats", &bad_stats)]);
    assert!(!valid, "{output}");
    for expected in
        ["bad_ping.json: invalid at /name", "bad_stats.json: invalid at /started", "/num_requests"]
    {
        assert!(output.contains(expected), "{expected}: {output}");
    }
    running.stop().await.unwrap();
}
