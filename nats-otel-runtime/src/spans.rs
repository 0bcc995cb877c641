//! The spans nats-otel emits, built with everything that does not change per
//! message computed once per subscription or publisher.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{Client, Message};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::capture::Capture;
use crate::reply::Failure;
use crate::semconv;
use crate::subscription::{Subscription, TraceMode};

/// The tracing target of every span and event nats-otel emits.
pub const TARGET: &str = "nats_otel";

/// What spans say about the connection: recorded as `messaging.client.id`,
/// `server.address` and `server.port`.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) client_id: Box<str>,
    pub(crate) address: Option<Box<str>>,
    pub(crate) port: Option<u16>,
}

impl Peer {
    pub(crate) fn of(client: &Client) -> Self {
        let info = client.server_info();
        Self {
            client_id: info.client_id.to_string().into(),
            address: (!info.host.is_empty()).then(|| info.host.into()),
            port: (info.port != 0).then_some(info.port),
        }
    }
}

/// Builds `process {pattern}` CONSUMER spans for one subscription.
#[derive(Debug)]
pub(crate) struct ProcessSpans {
    name: Box<str>,
    template: Option<Box<str>>,
    group: Option<Box<str>>,
    peer: Peer,
    mode: TraceMode,
    deprecated_names: bool,
    capture: Capture,
}

impl ProcessSpans {
    pub(crate) fn new(subscription: &Subscription, peer: Peer) -> Self {
        let (destination, template) =
            crate::subscription::destination_names(subscription.subject(), subscription.subject_template());
        Self {
            name: format!("process {destination}").into(),
            template,
            group: subscription.queue_group().map(Into::into),
            peer,
            mode: subscription.trace_mode(),
            deprecated_names: semconv::emit_deprecated_names(),
            capture: Capture::new(&subscription.capture),
        }
    }

    /// Opens the span for `message`, parented on (or linked to) the context the
    /// publisher sent; a new root when there is none or it is invalid.
    pub(crate) fn start(&self, message: &Message, context_in_body: bool) -> tracing::Span {
        let span = tracing::info_span!(
            target: TARGET,
            parent: None,
            "process",
            otel.name = &*self.name,
            otel.kind = "consumer",
            otel.status_code = Empty,
            otel.status_description = Empty,
            error.type = Empty,
            messaging.system = semconv::SYSTEM_NATS,
            messaging.operation.name = "process",
            messaging.operation.type = "process",
            messaging.destination.name = message.subject.as_str(),
            messaging.destination.template = self.template.as_deref(),
            messaging.consumer.group.name = self.group.as_deref(),
            messaging.message.body.size = message.payload.len() as i64,
            messaging.client.id = &*self.peer.client_id,
            server.address = self.peer.address.as_deref(),
            server.port = self.peer.port.map(i64::from),
            messaging.nats.reply_to = message.reply.as_deref(),
            messaging.operation = Empty,
            net.peer.name = Empty,
            net.peer.port = Empty,
        );
        if span.is_disabled() {
            return span;
        }
        if self.deprecated_names {
            record_deprecated_names(&span, "process", &self.peer);
        }
        self.capture.record(&span, message);
        attach_remote_parent(&span, message, context_in_body, self.mode);
        span
    }
}

/// Builds `send {subject}` PRODUCER and `request {subject}` CLIENT spans.
#[derive(Debug)]
pub(crate) struct SendSpans {
    peer: Peer,
    deprecated_names: bool,
}

/// Which kind of outbound span.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outbound {
    Send,
    Request,
}

impl SendSpans {
    pub(crate) fn new(peer: Peer) -> Self {
        Self { peer, deprecated_names: semconv::emit_deprecated_names() }
    }

    /// `template` names the span (and is recorded) for typed messages; the
    /// concrete subject is always `messaging.destination.name`.
    pub(crate) fn start(
        &self,
        kind: Outbound,
        subject: &str,
        template: Option<&str>,
        body_size: usize,
    ) -> tracing::Span {
        let (operation, otel_kind) = match kind {
            Outbound::Send => ("send", "producer"),
            Outbound::Request => ("request", "client"),
        };
        // The name is formatted once, by the layer, only when the span is enabled.
        let span = tracing::info_span!(
            target: TARGET,
            "send",
            otel.name = format_args!("{operation} {}", template.unwrap_or(subject)),
            otel.kind = otel_kind,
            otel.status_code = Empty,
            otel.status_description = Empty,
            error.type = Empty,
            messaging.system = semconv::SYSTEM_NATS,
            messaging.operation.name = operation,
            messaging.operation.type = "send",
            messaging.destination.name = subject,
            messaging.destination.template = template,
            messaging.message.body.size = body_size as i64,
            messaging.message.id = Empty,
            messaging.client.id = &*self.peer.client_id,
            server.address = self.peer.address.as_deref(),
            server.port = self.peer.port.map(i64::from),
            messaging.nats.jetstream.stream = Empty,
            messaging.nats.jetstream.sequence = Empty,
            messaging.nats.jetstream.duplicate = Empty,
            messaging.nats.jetstream.publish_attempts = Empty,
            messaging.operation = Empty,
            net.peer.name = Empty,
            net.peer.port = Empty,
        );
        if span.is_disabled() {
            return span;
        }
        if self.deprecated_names {
            record_deprecated_names(&span, "publish", &self.peer);
        }
        span
    }
}

/// The pre-1.25 names the seed spec uses, for `OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup`.
fn record_deprecated_names(span: &tracing::Span, operation: &'static str, peer: &Peer) {
    span.record("messaging.operation", operation);
    span.record("net.peer.name", peer.address.as_deref());
    span.record("net.peer.port", peer.port.map(i64::from));
}

/// Parents `span` on (or links it to) the context the publisher sent: from the
/// headers, else from a JSON envelope when the handler reads one. Without a valid
/// context the span stays a root.
fn attach_remote_parent(span: &tracing::Span, message: &Message, context_in_body: bool, mode: TraceMode) {
    use opentelemetry::trace::TraceContextExt;
    let parent = crate::propagation::extract_parent(message.headers.as_ref())
        .or_else(|| context_in_body.then(|| crate::extract::envelope_parent(&message.payload)).flatten());
    let Some(parent) = parent else { return };
    match mode {
        TraceMode::Parent => {
            // Cannot fail: the span is enabled and has not been entered yet.
            let _ = span.set_parent(parent);
        }
        TraceMode::Link => span.add_link(parent.span().span_context().clone()),
    }
}

/// Marks `span` failed: status Error, `error.type`, and an `exception` event.
pub(crate) fn record_failure(span: &tracing::Span, failure: &Failure) {
    record_error(span, failure.error_type(), failure.message());
}

/// Marks `span` failed with a low-cardinality `error_type` and a message.
pub(crate) fn record_error(span: &tracing::Span, error_type: &str, message: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "error");
    span.record("otel.status_description", message);
    span.record("error.type", error_type);
    // An unnamed event with an `error` field becomes an OpenTelemetry `exception`
    // event; the same event is the log line for fmt subscribers.
    tracing::error!(target: TARGET, parent: span, error = %message, exception.type = %error_type);
}

pin_project_lite::pin_project! {
    /// Polls a future inside a borrowed span (like `Instrument`, without cloning it).
    pub(crate) struct InSpan<'a, F> {
        span: &'a tracing::Span,
        #[pin]
        inner: F,
    }
}

impl<'a, F> InSpan<'a, F> {
    pub(crate) fn new(span: &'a tracing::Span, inner: F) -> Self {
        Self { span, inner }
    }
}

impl<F: Future> Future for InSpan<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        this.inner.poll(cx)
    }
}

/// `messaging.message.id` of a JetStream delivery: its `Nats-Msg-Id`, else
/// `{stream}:{sequence}`.
enum MessageId<'a> {
    Header(&'a str),
    Sequence(&'a str, u64),
}

impl<'a> MessageId<'a> {
    fn of(message: &'a Message, info: Option<&'a crate::JetStreamInfo>) -> Option<Self> {
        match (message.headers.as_ref().and_then(|h| h.get(NATS_MESSAGE_ID)), info) {
            (Some(id), _) => Some(MessageId::Header(id.as_str())),
            (None, Some(info)) => Some(MessageId::Sequence(&info.stream, info.stream_sequence)),
            (None, None) => None,
        }
    }
}

impl std::fmt::Display for MessageId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageId::Header(id) => f.write_str(id),
            MessageId::Sequence(stream, sequence) => write!(f, "{stream}:{sequence}"),
        }
    }
}

/// Builds `process {pattern}` CONSUMER spans for a JetStream consumer, and their
/// `ack|nak|term {pattern}` CLIENT settle spans.
#[derive(Debug)]
pub(crate) struct JetStreamSpans {
    name: Box<str>,
    template: Option<Box<str>>,
    durable: Box<str>,
    stream: Box<str>,
    settle_names: [Box<str>; 3],
    settle_record: crate::jetstream::SettleRecord,
    peer: Peer,
    mode: TraceMode,
    deprecated_names: bool,
    capture: Capture,
}

impl JetStreamSpans {
    pub(crate) fn new(consumer: &crate::JetStreamConsumer, peer: Peer) -> Self {
        let template = match consumer.filters.as_slice() {
            [_] => consumer.template.as_deref(),
            _ => None,
        };
        let (pattern, template) = crate::subscription::destination_names(consumer.pattern(), template);
        Self {
            name: format!("process {pattern}").into(),
            template,
            durable: consumer.durable_name().into(),
            stream: consumer.stream_name().into(),
            settle_names: [
                format!("ack {pattern}").into(),
                format!("nak {pattern}").into(),
                format!("term {pattern}").into(),
            ],
            settle_record: consumer.settle_record,
            peer,
            mode: consumer.trace,
            deprecated_names: semconv::emit_deprecated_names(),
            capture: Capture::new(&consumer.capture),
        }
    }

    pub(crate) fn start(
        &self,
        message: &Message,
        info: Option<&crate::JetStreamInfo>,
        context_in_body: bool,
    ) -> tracing::Span {
        // Field values are only evaluated when the span is enabled. The message id is
        // part of the span from the start: formatted once, no `record` afterwards.
        let span = tracing::info_span!(
            target: TARGET,
            parent: None,
            "process",
            otel.name = &*self.name,
            otel.kind = "consumer",
            otel.status_code = Empty,
            otel.status_description = Empty,
            error.type = Empty,
            messaging.system = semconv::SYSTEM_NATS,
            messaging.operation.name = "process",
            messaging.operation.type = "process",
            messaging.destination.name = message.subject.as_str(),
            messaging.destination.template = self.template.as_deref(),
            messaging.destination.subscription.name = &*self.durable,
            messaging.consumer.group.name = &*self.durable,
            messaging.message.id = MessageId::of(message, info).as_ref().map(tracing::field::display),
            messaging.message.body.size = message.payload.len() as i64,
            messaging.client.id = &*self.peer.client_id,
            server.address = self.peer.address.as_deref(),
            server.port = self.peer.port.map(i64::from),
            messaging.nats.jetstream.stream = &*self.stream,
            messaging.nats.jetstream.consumer = &*self.durable,
            messaging.nats.jetstream.sequence = info.map(|i| i.stream_sequence as i64),
            messaging.nats.jetstream.consumer_sequence = info.map(|i| i.consumer_sequence as i64),
            messaging.nats.jetstream.num_delivered = info.map(|i| i.delivered),
            messaging.nats.jetstream.num_pending = info.map(|i| i.pending as i64),
            messaging.operation = Empty,
            net.peer.name = Empty,
            net.peer.port = Empty,
        );
        if span.is_disabled() {
            return span;
        }
        if self.deprecated_names {
            record_deprecated_names(&span, "process", &self.peer);
        }
        self.capture.record(&span, message);
        attach_remote_parent(&span, message, context_in_body, self.mode);
        span
    }

    /// The span a settlement is sent in: a CLIENT child span, or (with
    /// `SettleRecord::Event`) the process span itself after an event.
    pub(crate) fn settle(&self, process: &tracing::Span, settlement: crate::Settlement) -> tracing::Span {
        let (name, operation) = match settlement {
            crate::Settlement::Ack => (&self.settle_names[0], "ack"),
            crate::Settlement::Nak(_) => (&self.settle_names[1], "nak"),
            crate::Settlement::Term | crate::Settlement::DeadLetter => (&self.settle_names[2], "term"),
        };
        if self.settle_record == crate::jetstream::SettleRecord::Event {
            tracing::info!(target: TARGET, parent: process, settlement = settlement.as_str(), "settle");
            return process.clone();
        }
        tracing::info_span!(
            target: TARGET,
            parent: process,
            "settle",
            otel.name = &**name,
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            error.type = Empty,
            messaging.system = semconv::SYSTEM_NATS,
            messaging.operation.name = operation,
            messaging.operation.type = "settle",
            messaging.destination.subscription.name = &*self.durable,
            messaging.consumer.group.name = &*self.durable,
            messaging.client.id = &*self.peer.client_id,
            server.address = self.peer.address.as_deref(),
            server.port = self.peer.port.map(i64::from),
            messaging.nats.jetstream.ack = settlement.as_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::registry::LookupSpan;

    use super::*;

    fn message(subject: &str) -> Message {
        Message {
            subject: subject.into(),
            reply: None,
            payload: bytes::Bytes::from_static(b"{}"),
            headers: None,
            status: None,
            description: None,
            length: 2,
        }
    }

    fn peer() -> Peer {
        Peer { client_id: "1".into(), address: Some("127.0.0.1".into()), port: Some(4222) }
    }

    #[test]
    fn process_spans_are_roots_even_inside_an_application_span() {
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
        tracing::dispatcher::with_default(&dispatch, || {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>().unwrap();
            let has_parent =
                |span: &tracing::Span| registry.span(&span.id().unwrap()).unwrap().parent().is_some();
            let core = ProcessSpans::new(&Subscription::new("orders.*"), peer());
            let jetstream = JetStreamSpans::new(&crate::JetStreamConsumer::new("ORDERS", "billing"), peer());

            let application = tracing::info_span!("application");
            let _entered = application.enter();
            assert!(has_parent(&tracing::info_span!("contextual")), "the set-up adopts contextual spans");
            assert!(!has_parent(&core.start(&message("orders.eu"), false)), "a core process span is a root");
            assert!(
                !has_parent(&jetstream.start(&message("orders.eu"), None, false)),
                "so is a JetStream one"
            );
        });
    }
}
