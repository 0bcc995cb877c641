//! A handler's log lines carry its trace id, span id and subject, through
//! `LogContext` around `tracing-subscriber`'s text and JSON formatters, so logs
//! join their traces. Each test installs the global subscriber: a process of
//! its own (cargo-nextest), on a multi-thread runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use nats_otel_runtime::log_context::LogContext;
use nats_otel_runtime::prelude::*;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Format;

#[nats_subscribe("logs.*")]
async fn charge(body: Bytes) -> Bytes {
    tracing::info!(amount = body.len(), "charging");
    body
}

/// Log output, kept in memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// Serves one request and logs once outside any span; the `process` span.
async fn serve_and_log(h: &Harness) -> opentelemetry_sdk::trace::SpanData {
    let running = spawn(NatsService::new(h.client.clone()).handler(charge)).await;
    let reply = Publisher::new(h.client.clone()).request("logs.orders", "abc").await.unwrap();
    assert_eq!(&reply.payload[..], b"abc");
    tracing::info!("outside any span");
    let spans = h.recorder.wait_for(|s| count(s, "process logs.*") == 1).await;
    running.stop().await.unwrap();
    one(&spans, "process logs.*").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_written_in_a_handler_carry_its_trace_span_and_subject() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .event_format(LogContext::new(Format::default().with_ansi(false)))
        .finish();
    let h = start().await;
    // After the recorder's own: the service takes the subscriber current when it starts.
    let _logging = tracing::subscriber::set_default(subscriber);
    let process = serve_and_log(&h).await;

    let text = lines.text();
    let charging = text.lines().find(|l| l.contains("charging")).unwrap_or_else(|| panic!("{text}"));
    assert!(charging.contains("amount=3"), "the event's own fields stay: {charging}");
    let expected = format!(
        " trace_id={} span_id={} messaging.destination.name=logs.orders",
        process.span_context.trace_id(),
        process.span_context.span_id()
    );
    assert!(charging.ends_with(&expected), "{charging}\n  expected it to end with{expected}");
    let outside = text.lines().find(|l| l.contains("outside any span")).unwrap();
    assert!(!outside.contains("trace_id="), "{outside}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_objects_written_in_a_handler_carry_its_trace_span_and_subject() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .event_format(LogContext::json(tracing_subscriber::fmt::format().json()))
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .finish();
    let h = start().await;
    // After the recorder's own: the service takes the subscriber current when it starts.
    let _logging = tracing::subscriber::set_default(subscriber);
    let process = serve_and_log(&h).await;

    let objects: Vec<serde_json::Value> = lines
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let charging = objects.iter().find(|o| o["fields"]["message"] == "charging").unwrap();
    assert_eq!(charging["fields"]["amount"], 3);
    assert_eq!(charging["trace_id"], process.span_context.trace_id().to_string());
    assert_eq!(charging["span_id"], process.span_context.span_id().to_string());
    assert_eq!(charging["messaging.destination.name"], "logs.orders");
    let outside = objects.iter().find(|o| o["fields"]["message"] == "outside any span").unwrap();
    assert!(outside.get("trace_id").is_none(), "{outside}");
}
