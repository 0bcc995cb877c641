//! Failures are logged at a level by whose fault they are: a client's (input an
//! extractor rejects, a `ServiceError` 4xx) at WARN, the service's (5xx, a
//! panic) at ERROR; once per message, as a root event of target `nats_otel`.
//! Without a subscriber they still reach stderr, rate-limited; start lists the
//! handlers at INFO.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use nats_otel_runtime::prelude::*;
use nats_otel_runtime::testing::NatsServer;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

#[nats_subscribe("levels.*")]
async fn judge(subject: Subject, Json(_n): Json<u32>) -> Result<(), ServiceError> {
    match subject.as_str() {
        "levels.missing" => Err(ServiceError::new(404, "no such order")),
        "levels.down" => Err(ServiceError::new(503, "the ledger is down")),
        "levels.panic" => panic!("the handler broke"),
        _ => Ok(()),
    }
}

/// The `nats_otel` log lines: level and message.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if event.metadata().target() != "nats_otel" {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push((*event.metadata().level(), message.0));
    }
}

impl Lines {
    /// The levels of the lines that contain `needle`, service side and
    /// requester side (`process …` and `request …`).
    fn levels_of(&self, needle: &str) -> (Vec<tracing::Level>, Vec<tracing::Level>) {
        let lines = self.0.lock().unwrap();
        let levels = |side: &str| {
            lines.iter().filter(|(_, m)| m.starts_with(side) && m.contains(needle)).map(|(l, _)| *l).collect()
        };
        (levels("process "), levels("request "))
    }
}

#[tokio::test]
async fn client_faults_warn_and_service_faults_are_errors() {
    let lines = Lines::default();
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let server = NatsServer::start().unwrap();
    let client = server.connect().await.unwrap();
    let running = spawn(NatsService::new(client.clone()).handler(judge)).await;

    let publisher = Publisher::new(client.clone());
    for (subject, body) in
        [("levels.missing", "1"), ("levels.down", "1"), ("levels.panic", "1"), ("levels.ok", "not a number")]
    {
        publisher.request(subject, body).await.unwrap_err();
    }
    running.stop().await.unwrap();

    const WARN: tracing::Level = tracing::Level::WARN;
    const ERROR: tracing::Level = tracing::Level::ERROR;
    assert_eq!(lines.levels_of("no such order"), (vec![WARN], vec![WARN]), "a 404 is the client's fault");
    assert_eq!(
        lines.levels_of("invalid JSON"),
        (vec![WARN], vec![WARN]),
        "rejected input is the client's fault"
    );
    assert_eq!(lines.levels_of("the ledger is down"), (vec![ERROR], vec![ERROR]), "a 503 is the service's");
    assert_eq!(lines.levels_of("the handler broke"), (vec![ERROR], vec![ERROR]), "a panic is the service's");
}

/// With no `tracing` subscriber, what a service drops is still said, on stderr,
/// once per interval (the rest counted); with no tracer provider either, that
/// spans go nowhere is said once, with the version mismatch that usually
/// causes it. Nothing else is written there.
#[test]
fn without_a_subscriber_rejections_still_reach_stderr_rate_limited() {
    let server = NatsServer::start().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_unheard"))
        .env("NATS_URL", server.url())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "the provider hint, a note and one line for four rejections: {stderr}");
    assert!(
        lines[0].contains("no OpenTelemetry tracer provider is installed for opentelemetry 0.33"),
        "{stderr}"
    );
    assert!(lines[0].contains("cargo tree -d -i opentelemetry"), "says how to find a mismatch: {stderr}");
    assert!(lines[1].contains("no `tracing` subscriber is installed"), "{stderr}");
    assert!(lines[2].starts_with("nats-otel: process orders.{id}: "), "{stderr}");
    assert!(
        lines[2].contains("\"seven\"") && lines[2].contains("`{id}`"),
        "names the subject and capture: {stderr}"
    );
}

#[tokio::test]
async fn start_lists_the_handlers_at_info() {
    let lines = Lines::default();
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let server = NatsServer::start().unwrap();
    let client = server.connect().await.unwrap();
    let running = spawn(NatsService::new(client).name("judges").version("1.0.0").handler(judge)).await;
    running.stop().await.unwrap();
    let lines = lines.0.lock().unwrap();
    let info: Vec<&String> =
        lines.iter().filter(|(level, _)| *level == tracing::Level::INFO).map(|(_, m)| m).collect();
    assert!(info.iter().any(|m| m.contains("service `judges` 1.0.0 is discoverable")), "{info:?}");
    assert!(
        info.iter().any(|m| m.starts_with("serving handler `") && m.contains("judge` on subject `levels.*`")),
        "{info:?}"
    );
}
