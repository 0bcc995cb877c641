//! `telemetry::init()` exports over the wire: a request served by nats-otel
//! reaches a real OTLP receiver (the test kit's, built on the OTLP protobuf
//! definitions) over gRPC, http/protobuf and http/json, in plain text and TLS,
//! with the resource from `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`,
//! spans with their attributes, parents and events, and metrics.
//!
//! `init` installs process-global providers and the global subscriber: each test
//! needs a process of its own, as `scripts/test` (cargo-nextest) runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)] // `std::env::set_var`, before anything reads the environment.

use std::time::Duration;

use nats_otel_runtime::prelude::*;
use nats_otel_runtime::telemetry::Telemetry;
use nats_otel_runtime::testing::NatsServer;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tests::otlp::{ClientAuth, OtlpReceiver, Received, ReceivedSpan, Unresponsive, Wire};
use tests::tls::Certificates;

#[nats_subscribe("otlp.*")]
async fn echo(body: Bytes) -> Bytes {
    tracing::info!(size = body.len(), "echoing");
    body
}

/// Sets the environment `init` reads: first thing each test does, before any
/// thread reads it.
fn environment(vars: &[(&str, &str)]) {
    let common = [
        ("OTEL_SERVICE_NAME", "checkout"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,team=payments"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ];
    for (key, value) in common.iter().chain(vars) {
        // SAFETY: single-threaded at this point (the runtime's workers wait).
        unsafe { std::env::set_var(key, value) };
    }
}

/// One request through the traced publisher, served by a nats-otel handler.
async fn serve_one_request() {
    let server = NatsServer::start().unwrap();
    let client = server.connect().await.unwrap();
    let running = NatsService::new(client.clone()).handler(echo).start().await.unwrap().spawn();
    let reply = Publisher::new(client).request("otlp.echo", "hello").await.unwrap();
    assert_eq!(&reply.payload[..], b"hello");
    running.stop().await.unwrap();
}

fn span<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.span.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one `{name}` span in {:?}",
        spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
    );
    found[0]
}

fn has_request_and_metrics(received: &Received) -> bool {
    let spans = received.spans();
    spans.iter().any(|s| s.span.name == "process otlp.*")
        && spans.iter().any(|s| s.span.name == "request otlp.echo")
        && received.metrics().iter().any(|(_, m)| m.name == "messaging.process.duration")
}

/// Shuts the providers down off the runtime's threads (a gRPC exporter's flush
/// needs them).
async fn shut_down(telemetry: Telemetry) {
    tokio::task::spawn_blocking(move || drop(telemetry)).await.unwrap();
}

/// What every export must show, whatever the wire.
fn check(received: &Received, traces: Wire, metrics: Wire, tls: bool) {
    assert!(
        received.traces.iter().all(|e| e.wire == traces && e.tls == tls),
        "traces by {traces:?}, TLS {tls}"
    );
    assert!(
        received.metrics.iter().all(|e| e.wire == metrics && e.tls == tls),
        "metrics by {metrics:?}, TLS {tls}"
    );

    let spans = received.spans();
    let request = span(&spans, "request otlp.echo");
    let process = span(&spans, "process otlp.*");
    assert_eq!(request.span.kind, SpanKind::Client as i32);
    assert_eq!(process.span.kind, SpanKind::Consumer as i32);
    assert_eq!(process.span.trace_id, request.span.trace_id, "one trace");
    assert_eq!(process.span.parent_span_id, request.span.span_id, "the process span is the request's child");
    assert_eq!(process.attribute("messaging.system").as_deref(), Some("nats"));
    assert_eq!(process.attribute("messaging.destination.name").as_deref(), Some("otlp.echo"));
    assert_eq!(process.attribute("messaging.operation.type").as_deref(), Some("process"));
    let event =
        process.span.events.iter().find(|e| e.name == "echoing").expect("the handler's log as an event");
    assert!(event.attributes.iter().any(|kv| kv.key == "size"), "{event:?}");

    for span in [request, process] {
        assert_eq!(span.resource_attribute("service.name").as_deref(), Some("checkout"));
        assert_eq!(span.resource_attribute("team").as_deref(), Some("payments"));
        assert_eq!(span.resource_attribute("deployment.environment.name").as_deref(), Some("test"));
    }
    let metrics = received.metrics();
    let (resource, duration) = metrics.iter().find(|(_, m)| m.name == "messaging.process.duration").unwrap();
    assert!(resource.iter().any(|kv| kv.key == "service.name" && tests::otlp::text(kv.value.as_ref().unwrap()) == "checkout"));
    assert_eq!(duration.unit, "s");
}

async fn exports(wire: Wire, protocol: &str) {
    let receiver = OtlpReceiver::start().await.unwrap();
    environment(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
    ]);
    let telemetry = nats_otel_runtime::telemetry::init().unwrap();
    serve_one_request().await;
    let received = receiver.wait_for(Duration::from_secs(20), has_request_and_metrics).await;
    shut_down(telemetry).await;
    let received = received.unwrap_or_else(|r| panic!("not everything arrived: {r:?}"));
    check(&received, wire, wire, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_grpc() {
    exports(Wire::Grpc, "grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_http_protobuf() {
    exports(Wire::HttpProtobuf, "http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_http_json() {
    exports(Wire::HttpJson, "http/json").await;
}

/// Mutual TLS with a CA of the test's: traces over gRPC, metrics over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_tls_on_both_protocols_with_a_client_certificate() {
    let certificates = Certificates::generate().unwrap();
    let receiver = OtlpReceiver::start_tls(&certificates, ClientAuth::Required).await.unwrap();
    environment(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &certificates.path_str("ca.pem")),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &certificates.path_str("client.pem")),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &certificates.path_str("client-key.pem")),
    ]);
    let telemetry = nats_otel_runtime::telemetry::init().unwrap();
    serve_one_request().await;
    let received = receiver.wait_for(Duration::from_secs(20), has_request_and_metrics).await;
    shut_down(telemetry).await;
    let received = received.unwrap_or_else(|r| panic!("not everything arrived: {r:?}"));
    check(&received, Wire::Grpc, Wire::HttpProtobuf, true);
    assert!(received.refused.is_empty(), "{:?}", received.refused);
}

/// A collector the exporter must not trust (its certificate is from another CA)
/// gets nothing, on either protocol; and a collector that demands a client
/// certificate refuses an exporter without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_export_trusts_only_the_named_ca_and_presents_the_client_certificate() {
    let certificates = Certificates::generate().unwrap();
    let untrusted = OtlpReceiver::start_tls(&certificates, ClientAuth::None).await.unwrap();
    let demanding = OtlpReceiver::start_tls(&certificates, ClientAuth::Required).await.unwrap();
    environment(&[
        // Traces (gRPC) to a server signed by a CA they do not trust ...
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", untrusted.endpoint()),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &certificates.path_str("other-ca.pem")),
        // ... metrics (HTTP) trusting it, but with no client certificate.
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &format!("{}/v1/metrics", demanding.endpoint())),
        ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", &certificates.path_str("ca.pem")),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
    ]);
    let telemetry = nats_otel_runtime::telemetry::init().unwrap();
    serve_one_request().await;
    let refused = |r: &Received| !r.refused.is_empty();
    let untrusted_saw = untrusted.wait_for(Duration::from_secs(20), refused).await;
    let demanding_saw = demanding.wait_for(Duration::from_secs(20), refused).await;
    shut_down(telemetry).await;
    for (saw, what) in
        [(untrusted_saw, "the untrusted collector"), (demanding_saw, "the demanding collector")]
    {
        let saw = saw.unwrap_or_else(|r| panic!("{what} saw no refused handshake: {r:?}"));
        assert!(saw.traces.is_empty() && saw.metrics.is_empty(), "{what} received data: {saw:?}");
    }
    // Nothing arrived later either.
    assert!(untrusted.received().traces.is_empty());
    assert!(demanding.received().metrics.is_empty());
}

/// A missing or wrong certificate file fails `init`, naming the file, instead
/// of failing every export later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_file_fails_init_naming_it() {
    environment(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.invalid:4318"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
    ]);
    let error = nats_otel_runtime::telemetry::init().unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/ca.pem") && message.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"),
        "{message}"
    );
    let source = std::error::Error::source(&error).expect("the I/O error underneath");
    assert!(
        !message.contains(&source.to_string()),
        "the cause is printed once, by whoever walks the chain: {message}"
    );

    // Files that are there but hold the wrong bytes fail `init` too, on either protocol.
    let certificates = Certificates::generate().unwrap();
    let garbage = certificates.path_str("garbage.pem");
    std::fs::write(&garbage, b"\x00\xffnot PEM\n-----BEGIN CERTIFICATE-----\n%%%\n").unwrap();
    for protocol in ["grpc", "http/protobuf"] {
        environment(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &garbage),
        ]);
        let message = nats_otel_runtime::telemetry::init().unwrap_err().to_string();
        assert!(
            message.contains("is not valid PEM") && message.contains("garbage.pem"),
            "{protocol}: {message}"
        );
    }
    // A key file that holds a certificate, not a key.
    environment(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &certificates.path_str("ca.pem")),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &certificates.path_str("client.pem")),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &certificates.path_str("client.pem")),
    ]);
    let message = nats_otel_runtime::telemetry::init().unwrap_err().to_string();
    assert!(message.contains("holds no PEM private key"), "{message}");
}

/// With spans ending faster than the collector takes them, the SDK's queue drops
/// spans, and `init` makes that visible on stderr (even with `RUST_LOG=error`),
/// with the total at shutdown. The child process exports to a port that never
/// answers, through a queue of 8.
#[test]
fn dropped_spans_are_reported_on_stderr() {
    let unresponsive = Unresponsive::bind().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_drop_spans"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", unresponsive.endpoint())
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "8")
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("BatchSpanProcessor.SpanDroppingStarted"),
        "the first drop is reported: {stderr}"
    );
    let total = stderr
        .lines()
        .find(|line| line.contains("BatchSpanProcessor.SpansDropped"))
        .unwrap_or_else(|| panic!("the total is reported at shutdown: {stderr}"));
    let dropped: u64 = total
        .split("dropped_span_count=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("a count in {total}"));
    // 1000 spans: at least the queue's 8 are kept (16 when the exporter thread
    // took a batch before the burst filled the queue; a busy machine may not
    // schedule it in time), and while the first export hangs for 500 ms most
    // of the rest are dropped, however slow the machine.
    assert!((500..=1000 - 8).contains(&dropped), "{total}");
}
