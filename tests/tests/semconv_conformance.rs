//! Every kind of span nats-otel emits, checked against the OpenTelemetry
//! messaging semantic conventions v1.44 (`docs/messaging/messaging-spans.md`,
//! `model/messaging/spans.yaml`): span kind, `messaging.operation.type`, the
//! name `{operation} {destination}`, the attributes that are required or
//! conditionally required for a single-message span, the recommended ones
//! nats-otel records, and those a span kind must not carry.
//!
//! The spans come from real traffic through a nats-server: a core publish and
//! handler, a request and its reply, JetStream publishes and a consumer that
//! acks one message, naks one and terms one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_nats::jetstream::{self, stream};
use common::*;
use nats_otel_runtime::prelude::*;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;

/// One span kind as the conventions describe it.
struct Convention {
    /// `messaging.operation.name` values that make a span this kind.
    operations: &'static [&'static str],
    kind: SpanKind,
    operation_type: &'static str,
    /// Required, or conditionally required where the condition holds for every
    /// span of the kind (a single message: `messaging.destination.name`).
    required: &'static [&'static str],
    /// Recommended attributes nats-otel records on every span of the kind. Not
    /// `network.peer.address`/`network.peer.port`: async-nats does not expose
    /// its connection's socket, so the peer is not known (`server.address` and
    /// `server.port` come from the server's `INFO`).
    recommended: &'static [&'static str],
    /// Attributes the conventions keep off the kind.
    forbidden: &'static [&'static str],
}

const COMMON_REQUIRED: &[&str] = &[
    "messaging.system",
    "messaging.operation.name",
    "messaging.operation.type",
    "messaging.destination.name",
];

const CONVENTIONS: &[Convention] = &[
    Convention {
        operations: &["send"],
        kind: SpanKind::Producer,
        operation_type: "send",
        required: COMMON_REQUIRED,
        recommended: &["messaging.client.id", "server.address", "server.port"],
        forbidden: &["messaging.batch.message_count"],
    },
    Convention {
        // A request sends one message and waits for its reply: a CLIENT `send`.
        operations: &["request"],
        kind: SpanKind::Client,
        operation_type: "send",
        required: COMMON_REQUIRED,
        recommended: &["messaging.client.id", "server.address", "server.port"],
        forbidden: &["messaging.batch.message_count"],
    },
    Convention {
        operations: &["process"],
        kind: SpanKind::Consumer,
        operation_type: "process",
        required: COMMON_REQUIRED,
        recommended: &["messaging.client.id", "server.address", "server.port"],
        forbidden: &["messaging.batch.message_count"],
    },
    Convention {
        operations: &["ack", "nak", "term"],
        kind: SpanKind::Client,
        operation_type: "settle",
        required: COMMON_REQUIRED,
        // Every settled message is a JetStream message, so it has an id.
        recommended: &["messaging.message.id", "messaging.client.id", "server.address", "server.port"],
        // "They carry no size attributes."
        forbidden: &[
            "messaging.message.body.size",
            "messaging.message.envelope.size",
            "messaging.batch.message_count",
        ],
    },
];

#[nats_subscribe("conf.core.*", queue = "conformance")]
async fn on_core(_body: Bytes) {}

#[nats_subscribe("conf.ask")]
async fn on_ask(body: Bytes) -> Bytes {
    body
}

/// A failure that is retried (nak) or not (term).
#[derive(Debug)]
struct Refused {
    permanent: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.permanent { "refused for good" } else { "refused for now" })
    }
}

impl HandlerError for Refused {
    fn retry(&self) -> nats_otel_runtime::Retry {
        if self.permanent { nats_otel_runtime::Retry::Never } else { nats_otel_runtime::Retry::Backoff }
    }
}

#[jetstream_consumer(stream = "CONF", durable = "conformance", filter = "conf.js.*", max_deliver = 3)]
async fn on_stored(body: Bytes, info: JetStreamInfo) -> Result<(), Refused> {
    match (&body[..], info.delivered) {
        (b"bad", _) => Err(Refused { permanent: true }),
        (b"retry", 1) => Err(Refused { permanent: false }),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn every_span_kind_follows_the_messaging_conventions() {
    let h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "CONF".into(),
            subjects: vec!["conf.js.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let running =
        spawn(NatsService::new(h.client.clone()).handler(on_core).handler(on_ask).handler(on_stored)).await;

    let publisher = Publisher::new(h.client.clone());
    publisher.publish("conf.core.a", "x").await.unwrap();
    publisher.request("conf.ask", "q").await.unwrap();
    for body in ["ok", "retry", "bad"] {
        publisher.publish_to_stream("conf.js.one", body).await.unwrap();
    }

    let spans = h
        .recorder
        .wait_for(|s| {
            count(s, "ack conf.js.*") >= 2
                && count(s, "nak conf.js.*") >= 1
                && count(s, "term conf.js.*") >= 1
        })
        .await;

    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    // Set-up (`start {service}`, `jetstream.create_consumer`, …) is not a
    // messaging operation: it must not claim one.
    let (set_up, spans): (Vec<_>, Vec<_>) =
        spans.iter().partition(|s| s.name.starts_with("jetstream.") || s.name.starts_with("start "));
    assert!(!set_up.is_empty(), "the consumer's set-up is traced");
    for span in &set_up {
        assert!(attr(span, "messaging.operation.type").is_none(), "`{}` claims an operation type", span.name);
    }
    for span in &spans {
        let operation = attr_str(span, "messaging.operation.name")
            .unwrap_or_else(|| panic!("`{}` has no messaging.operation.name (required)", span.name));
        let convention = CONVENTIONS
            .iter()
            .find(|c| c.operations.contains(&operation.as_str()))
            .unwrap_or_else(|| panic!("`{}`: operation `{operation}` is in no convention", span.name));
        check(span, convention, &operation);
        *checked.entry(convention.operation_type).or_default() += 1;
    }
    // Every kind was seen: the table is not checked against nothing.
    for convention in CONVENTIONS {
        assert!(
            checked.contains_key(convention.operation_type),
            "no `{}` span: {checked:?}",
            convention.operation_type
        );
    }
    assert!(
        spans.iter().any(|s| s.name == "request conf.ask"),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    running.stop().await.unwrap();
}

fn check(span: &SpanData, convention: &Convention, operation: &str) {
    let name = &span.name;
    assert_eq!(span.span_kind, convention.kind, "`{name}`: span kind");
    assert_eq!(attr_str(span, "messaging.system").as_deref(), Some("nats"), "`{name}`: messaging.system");
    assert_eq!(
        attr_str(span, "messaging.operation.type").as_deref(),
        Some(convention.operation_type),
        "`{name}`: messaging.operation.type"
    );
    for key in convention.required.iter().chain(convention.recommended) {
        assert!(attr(span, key).is_some(), "`{name}` lacks `{key}`");
    }
    for key in convention.forbidden {
        assert!(attr(span, key).is_none(), "`{name}` carries `{key}`, which the conventions keep off it");
    }
    // `{operation} {destination}`: the template when there is one (low
    // cardinality), which must not be a copy of a concrete name.
    let destination = attr_str(span, "messaging.destination.name").unwrap();
    let template = attr_str(span, "messaging.destination.template");
    if let Some(template) = &template {
        assert!(template.contains(['*', '>', '{']), "`{name}`: template `{template}` is a concrete subject");
    }
    assert_eq!(*name, format!("{operation} {}", template.as_deref().unwrap_or(&destination)), "span name");
    // Status: Error and `error.type` together, or neither.
    let failed = matches!(span.status, opentelemetry::trace::Status::Error { .. });
    assert_eq!(
        failed,
        attr(span, "error.type").is_some(),
        "`{name}`: status {:?} vs error.type",
        span.status
    );
}

/// Fails the message `bad` for good.
#[jetstream_consumer(
    stream = "CONFB",
    durable = "batches",
    filter = "confb.*",
    batch_size = 10,
    batch_wait = "100ms"
)]
async fn on_batch(bodies: Batch<Bytes>) -> BatchOutcome<Refused> {
    let mut outcome = BatchOutcome::new();
    for body in &bodies {
        if &body[..] == b"bad" {
            outcome.fail(body.id(), Refused { permanent: true });
        }
    }
    outcome
}

/// A batch's `process` span: batch receive/process in the conventions.
const BATCH_PROCESS: Convention = Convention {
    operations: &["process"],
    kind: SpanKind::Consumer,
    operation_type: "process",
    // The destination because every message of this batch has the same one.
    required: &[
        "messaging.system",
        "messaging.operation.name",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.batch.message_count",
    ],
    recommended: &["messaging.client.id", "server.address", "server.port"],
    // What describes one message stays on its settle span.
    forbidden: &["messaging.message.id", "messaging.message.body.size", "messaging.nats.jetstream.sequence"],
};

#[tokio::test]
async fn a_batch_follows_the_conventions_for_batches() {
    let h = start().await;
    jetstream::new(h.client.clone())
        .create_stream(stream::Config {
            name: "CONFB".into(),
            subjects: vec!["confb.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let publisher = Publisher::new(h.client.clone());
    for body in ["ok", "ok", "bad"] {
        publisher.publish_to_stream("confb.a", body).await.unwrap();
    }
    let running = spawn(NatsService::new(h.client.clone()).handler(on_batch)).await;
    let spans = h.recorder.wait_for(|s| count(s, "ack confb.*") == 2 && count(s, "term confb.*") == 1).await;
    let process = one(&spans, "process confb.*");
    check(process, &BATCH_PROCESS, "process");
    assert_eq!(attr_i64(process, "messaging.batch.message_count"), Some(3));
    assert_eq!(attr_str(process, "messaging.destination.name").as_deref(), Some("confb.a"));
    let sends: Vec<_> = named(&spans, "send confb.a");
    assert_eq!(process.links.links.len(), 3, "a link to each message's context");
    for link in &process.links.links {
        let (trace, span) = (link.span_context.trace_id(), link.span_context.span_id());
        assert!(
            sends
                .iter()
                .any(|send| send.span_context.trace_id() == trace && send.span_context.span_id() == span),
            "links go to the sends"
        );
    }
    let settle = CONVENTIONS.iter().find(|c| c.operation_type == "settle").unwrap();
    for span in named(&spans, "ack confb.*").into_iter().chain(named(&spans, "term confb.*")) {
        check(span, settle, &attr_str(span, "messaging.operation.name").unwrap());
        assert_eq!(span.parent_span_id, process.span_context.span_id(), "settled inside the batch");
    }

    // Messages to different subjects: the batch names no destination.
    h.recorder.reset();
    publisher.publish_to_stream("confb.a", "ok").await.unwrap();
    publisher.publish_to_stream("confb.b", "ok").await.unwrap();
    let spans = h.recorder.wait_for(|s| count(s, "ack confb.*") == 2).await;
    let mixed: Vec<_> = named(&spans, "process confb.*");
    assert!(!mixed.is_empty());
    for process in mixed {
        let size = attr_i64(process, "messaging.batch.message_count").unwrap();
        assert_eq!(
            attr(process, "messaging.destination.name").is_some(),
            size == 1,
            "named only when one destination"
        );
    }
    running.stop().await.unwrap();
}
