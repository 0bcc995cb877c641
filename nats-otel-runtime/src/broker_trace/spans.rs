//! A server's report as a span: one span per server the message crossed, from
//! its ingress to its last event, with what it did as attributes and events.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};

use super::report::{ServerReport, TraceEvent};
use crate::otel::semconv;

/// The attributes of a server's span, beside `messaging.system`,
/// `messaging.destination.name` (the subject it came in on) and
/// `messaging.message.envelope.size`.
pub mod attributes {
    /// The server's name.
    pub const SERVER_NAME: &str = "messaging.nats.server.name";
    /// The server's unique id.
    pub const SERVER_ID: &str = "messaging.nats.server.id";
    /// The server's cluster.
    pub const SERVER_CLUSTER: &str = "messaging.nats.server.cluster";
    /// The server's JetStream domain.
    pub const SERVER_DOMAIN: &str = "messaging.nats.server.domain";
    /// The server's version.
    pub const SERVER_VERSION: &str = "messaging.nats.server.version";
    /// Where the report sits in the path (`1`, `1.2`); absent for the first server.
    pub const HOP: &str = "messaging.nats.hop";
    /// The kind of connection the message came in on (`client`, `route`, `gateway`, `leaf`).
    pub const INGRESS_KIND: &str = "messaging.nats.ingress.kind";
    /// The name of that connection (a client's name, the sending server's).
    pub const INGRESS_NAME: &str = "messaging.nats.ingress.name";
    /// The account the message came in on.
    pub const ACCOUNT: &str = "messaging.nats.account";
    /// The subject after a subject mapping.
    pub const MAPPED_SUBJECT: &str = "messaging.nats.destination.mapped";
    /// The stream JetStream stored the message in.
    pub const STREAM: &str = "messaging.nats.jetstream.stream";
    /// How many connections the server delivered or forwarded the message to.
    pub const EGRESS_COUNT: &str = "messaging.nats.egress.count";
    /// An event's connection kind, name, subscription, queue group, hop and error.
    pub const EVENT_KIND: &str = "messaging.nats.connection.kind";
    /// See [`EVENT_KIND`].
    pub const EVENT_NAME: &str = "messaging.nats.connection.name";
    /// See [`EVENT_KIND`].
    pub const EVENT_SUBSCRIPTION: &str = "messaging.nats.subscription";
    /// See [`EVENT_KIND`].
    pub const EVENT_QUEUE: &str = "messaging.nats.queue";
    /// See [`EVENT_KIND`].
    pub const EVENT_ERROR: &str = "error.message";
}

/// The span name of a server's report: `nats-server {name}`.
pub(crate) fn span_name(report: &ServerReport) -> String {
    format!("nats-server {}", report.server.name)
}

/// Records `report` as a span, child of `parent`; returns the context holding it
/// (the parent of the servers it forwarded the message to).
pub(crate) fn record(tracer: &BoxedTracer, report: &ServerReport, parent: &Context) -> Context {
    let ingress = report.events.iter().find_map(|event| match event {
        TraceEvent::Ingress { at, kind, name, account, subject, error } => {
            Some((*at, *kind, name, account, subject, error.as_deref()))
        }
        _ => None,
    });
    let times = report.events.iter().filter_map(TraceEvent::at);
    let start = ingress.map(|(at, ..)| at).or_else(|| times.clone().min()).or(report.server.time);
    let end = times.chain(report.server.time).max();

    let mut attributes = vec![
        KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS),
        KeyValue::new(attributes::SERVER_NAME, report.server.name.clone()),
        KeyValue::new(attributes::SERVER_ID, report.server.id.clone()),
        KeyValue::new(attributes::SERVER_VERSION, report.server.version.clone()),
        KeyValue::new("messaging.message.envelope.size", report.request.size as i64),
    ];
    let mut optional = |key: &'static str, value: Option<&str>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            attributes.push(KeyValue::new(key, value.to_owned()));
        }
    };
    optional(attributes::SERVER_CLUSTER, report.server.cluster.as_deref());
    optional(attributes::SERVER_DOMAIN, report.server.domain.as_deref());
    optional(attributes::HOP, Some(report.request.hop()));
    let host = report.server.host.as_str();
    optional("server.address", Some(host).filter(|host| !matches!(*host, "0.0.0.0" | "::" | "[::]")));
    let mut failure: Option<Cow<'_, str>> = None;
    if let Some((_, kind, name, account, subject, error)) = ingress {
        optional(semconv::MESSAGING_DESTINATION_NAME, Some(subject));
        optional(attributes::INGRESS_KIND, Some(kind.as_str()));
        optional(attributes::INGRESS_NAME, Some(name));
        optional(attributes::ACCOUNT, Some(account));
        failure = error.map(Cow::Borrowed);
    }
    let mut egresses = 0i64;
    for event in &report.events {
        match event {
            TraceEvent::SubjectMapping { mapped_to, .. } => {
                optional(attributes::MAPPED_SUBJECT, Some(mapped_to))
            }
            TraceEvent::JetStream { stream, error, .. } => {
                optional(attributes::STREAM, Some(stream));
                if let Some(error) = error {
                    failure.get_or_insert(Cow::Borrowed(error));
                }
            }
            TraceEvent::Egress { .. } => egresses += 1,
            _ => {}
        }
    }
    attributes.push(KeyValue::new(attributes::EGRESS_COUNT, egresses));

    let mut builder =
        tracer.span_builder(span_name(report)).with_kind(SpanKind::Internal).with_attributes(attributes);
    if let Some(start) = start {
        builder = builder.with_start_time(start);
    }
    let mut span = tracer.build_with_context(builder, parent);
    for event in &report.events {
        if let Some((name, at, attributes)) = event_of(event) {
            span.add_event_with_timestamp(name, at, attributes);
        }
    }
    if let Some(failure) = failure {
        span.set_status(Status::error(failure.into_owned()));
    }
    match end {
        Some(end) => span.end_with_timestamp(end),
        None => span.end(),
    }
    parent.with_span(span)
}

/// An event on the server's span for what it did after the ingress.
fn event_of(event: &TraceEvent) -> Option<(&'static str, SystemTime, Vec<KeyValue>)> {
    let mut attributes = Vec::new();
    let mut push = |key: &'static str, value: Option<&str>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            attributes.push(KeyValue::new(key, value.to_owned()));
        }
    };
    let (name, at) = match event {
        TraceEvent::Ingress { .. } | TraceEvent::Unknown => return None,
        TraceEvent::SubjectMapping { at, mapped_to } => {
            push(semconv::MESSAGING_DESTINATION_NAME, Some(mapped_to));
            ("subject mapping", *at)
        }
        TraceEvent::StreamExport { at, account, to } => {
            push(attributes::ACCOUNT, Some(account));
            push(semconv::MESSAGING_DESTINATION_NAME, Some(to));
            ("stream export", *at)
        }
        TraceEvent::ServiceImport { at, account, from, to } => {
            push(attributes::ACCOUNT, Some(account));
            push("messaging.nats.import.from", Some(from));
            push(semconv::MESSAGING_DESTINATION_NAME, Some(to));
            ("service import", *at)
        }
        TraceEvent::JetStream { at, stream, subject, no_interest, error } => {
            push(attributes::STREAM, Some(stream));
            push(semconv::MESSAGING_DESTINATION_NAME, subject.as_deref());
            push(attributes::EVENT_ERROR, error.as_deref());
            if *no_interest {
                attributes.push(KeyValue::new("messaging.nats.jetstream.no_interest", true));
            }
            ("jetstream store", *at)
        }
        TraceEvent::Egress { at, kind, name, hop, account, subscription, queue, error } => {
            push(attributes::EVENT_KIND, Some(kind.as_str()));
            push(attributes::EVENT_NAME, Some(name));
            push(attributes::HOP, hop.as_deref());
            push(attributes::ACCOUNT, account.as_deref());
            push(attributes::EVENT_SUBSCRIPTION, subscription.as_deref());
            push(attributes::EVENT_QUEUE, queue.as_deref());
            push(attributes::EVENT_ERROR, error.as_deref());
            (if kind.is_server() { "forward" } else { "deliver" }, *at)
        }
    };
    Some((name, at, attributes))
}
