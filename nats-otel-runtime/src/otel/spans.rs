//! The spans nats-otel emits, made with the OpenTelemetry API (see
//! [`tracer`](crate::tracer)), with everything that does not change per message
//! computed once per subscription or publisher: names, and the constant
//! attributes as interned strings that cost nothing to copy.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Poll;

use async_nats::Message;
use async_nats::header::NATS_MESSAGE_ID;
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue};

use super::TARGET;
use super::capture::Capture;
use super::peer::Peer;
use super::semconv;
use super::tracer::Tracer;
use crate::endpoint::{JetStreamConsumer, SettleRecord, Subscription, TraceMode};
use crate::handler::reply::Failure;
use crate::handler::{JetStreamInfo, Settlement};

/// Attribute keys that are not in `opentelemetry-semantic-conventions`' list.
mod key {
    pub(super) const REPLY_TO: &str = super::semconv::MESSAGING_NATS_REPLY_TO;
    pub(super) const SUBSCRIPTION_NAME: &str = "messaging.destination.subscription.name";
    pub(super) const MESSAGE_ID: &str = "messaging.message.id";
    pub(super) const STREAM: &str = "messaging.nats.jetstream.stream";
    pub(super) const CONSUMER: &str = "messaging.nats.jetstream.consumer";
    pub(super) const SEQUENCE: &str = "messaging.nats.jetstream.sequence";
    pub(super) const CONSUMER_SEQUENCE: &str = "messaging.nats.jetstream.consumer_sequence";
    pub(super) const NUM_DELIVERED: &str = "messaging.nats.jetstream.num_delivered";
    pub(super) const NUM_PENDING: &str = "messaging.nats.jetstream.num_pending";
    pub(super) const ACK: &str = "messaging.nats.jetstream.ack";
}

/// The strings that label an endpoint's spans (names, server address,
/// template, group, stream, durable), kept for the life of the process.
///
/// Copying a `&'static str` into a span's attributes costs neither an
/// allocation nor a reference count; a shared `Arc<str>` would cost two atomic
/// operations a span, the second on the exporter's thread, which takes the
/// count's cache line away from the thread that makes the next span. There is
/// one copy per distinct string, however often services start, publishers are
/// made or clients reconnect: these strings come from configuration and the
/// servers' addresses, never from messages. (Client ids are new with every
/// connection: only so many are interned, see [`Peer`].)
pub(crate) fn intern(value: &str) -> &'static str {
    static STRINGS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut strings = STRINGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let strings = strings.get_or_insert_with(HashSet::new);
    match strings.get(value) {
        Some(interned) => interned,
        None => {
            let interned: &'static str = Box::leak(value.into());
            strings.insert(interned);
            interned
        }
    }
}

/// A string attribute every span of an endpoint (or of one of its operations)
/// has, but the connection's (see [`Peer`]).
///
/// Key and value are `'static`, so making the `KeyValue` for a span is a few
/// stores, where cloning a prepared one takes a branch for every field.
#[derive(Debug, Clone, Copy)]
struct Constant(&'static str, &'static str);

impl Constant {
    /// The value interned.
    fn interned(key: &'static str, value: &str) -> Self {
        Self(key, intern(value))
    }

    fn key_value(&self) -> KeyValue {
        KeyValue::new(self.0, self.1)
    }
}

/// The attributes every span of one operation of an endpoint has, but the
/// connection's: the system, the operation's name and type (and its pre-1.25
/// name `deprecated`, when there is one and it is asked for).
fn operation_constants(
    name: &'static str,
    kind: &'static str,
    deprecated: Option<&'static str>,
) -> Vec<Constant> {
    let mut out = vec![
        Constant(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS),
        Constant(semconv::MESSAGING_OPERATION_NAME, name),
        Constant(semconv::MESSAGING_OPERATION_TYPE, kind),
    ];
    if let Some(operation) = deprecated.filter(|_| semconv::emit_deprecated_names()) {
        out.push(Constant(semconv::deprecated::MESSAGING_OPERATION, operation));
    }
    out
}

/// The attributes every `process` span of an endpoint has, but the connection's.
fn process_constants(template: Option<&str>, group: Option<&str>) -> Vec<Constant> {
    let mut out = operation_constants("process", "process", Some("process"));
    if let Some(template) = template {
        out.push(Constant::interned(semconv::MESSAGING_DESTINATION_TEMPLATE, template));
    }
    if let Some(group) = group {
        out.push(Constant::interned(semconv::MESSAGING_CONSUMER_GROUP_NAME, group));
    }
    out
}

/// The subject every message of an endpoint arrives on, when there is only one
/// (a subject or filter without wildcards), interned to name their destination.
fn only_subject(subject: &str) -> Option<&'static str> {
    (!crate::endpoint::has_wildcards(subject)).then(|| intern(subject))
}

/// An endpoint's constant attributes and its connection's: with room for `more`.
fn endpoint_attributes(constants: &[Constant], peer: &Peer, deprecated: bool, more: usize) -> Vec<KeyValue> {
    let connection = peer.current();
    let mut attributes = Vec::with_capacity(constants.len() + connection.len(deprecated) + more);
    attributes.extend(constants.iter().map(Constant::key_value));
    connection.extend(&mut attributes, deprecated);
    attributes
}

/// `messaging.destination.name` of a message: free when it is the endpoint's
/// `only` subject (interned); else one allocation, shared by reference count
/// wherever it is copied (a process span and its settle spans).
fn destination(only: Option<&'static str>, subject: &str) -> StringValue {
    match only {
        Some(only) if only == subject => StringValue::from(only),
        _ => StringValue::from(Arc::<str>::from(subject)),
    }
}

/// Room in a `process` span's attribute list for what each message adds: the
/// destination and body size, then the reply subject (core) or the message id
/// and four delivery numbers (JetStream). One more only costs a reallocation.
const PER_MESSAGE_ATTRIBUTES: usize = 7;

/// A `process` span's attributes so far: the endpoint's, then what every
/// message has; with room for the rest and `captured`. The destination costs
/// nothing when it is the endpoint's `only` subject, and a copy when a wildcard
/// matched it.
fn message_attributes(
    constants: &[Constant],
    peer: &Peer,
    only: Option<&'static str>,
    message: &Message,
    captured: usize,
) -> Vec<KeyValue> {
    let destination = destination(only, message.subject.as_str());
    let room = PER_MESSAGE_ATTRIBUTES + captured;
    let mut attributes = endpoint_attributes(constants, peer, semconv::emit_deprecated_names(), room);
    attributes.extend([
        KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, destination),
        KeyValue::new(semconv::MESSAGING_MESSAGE_BODY_SIZE, message.payload.len() as i64),
    ]);
    attributes
}

/// The context the publisher sent: from the headers, else from a JSON envelope
/// when the handler reads one.
fn remote_parent(message: &Message, context_in_body: bool) -> Option<Context> {
    super::propagation::extract_parent(message.headers.as_ref())
        .or_else(|| context_in_body.then(|| super::propagation::envelope_parent(&message.payload)).flatten())
}

/// A `process` span: parented on (or linked to) the publisher's context, a new
/// root when there is none or it is invalid, never a child of whatever span is
/// current where the service runs.
fn start_process(
    tracer: &Tracer,
    name: &'static str,
    attributes: Vec<KeyValue>,
    remote: Option<Context>,
    mode: TraceMode,
) -> Context {
    let mut builder = SpanBuilder::from_name(name).with_kind(SpanKind::Consumer).with_attributes(attributes);
    let parent = match (remote, mode) {
        (Some(remote), TraceMode::Parent) => remote,
        (Some(remote), TraceMode::Link) => {
            builder.links = Some(vec![Link::with_context(remote.span().span_context().clone())]);
            Context::new()
        }
        (None, _) => Context::new(),
    };
    tracer.start(builder, &parent)
}

/// Which kind of endpoint a `process` span is for: what each message adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consuming {
    /// A core subscription: the reply subject of requests.
    Core,
    /// A JetStream consumer: the message id and the delivery's sequences and
    /// counts (its reply subject is the ack subject, not recorded).
    JetStream,
}

/// Builds the `process {pattern}` CONSUMER spans of one endpoint, core or
/// JetStream: every attribute they carry is chosen here.
#[derive(Debug)]
pub(crate) struct ProcessSpans {
    tracer: Tracer,
    name: &'static str,
    constants: Vec<Constant>,
    peer: Peer,
    only_subject: Option<&'static str>,
    mode: TraceMode,
    capture: Capture,
    kind: Consuming,
}

impl ProcessSpans {
    /// The spans of a core subscription.
    pub(crate) fn core(subscription: &Subscription, peer: Peer) -> Self {
        let (destination, template) =
            crate::endpoint::destination_names(subscription.subject(), subscription.subject_template());
        Self {
            tracer: Tracer::resolve(),
            name: intern(&format!("process {destination}")),
            constants: process_constants(template.as_deref(), subscription.queue_group()),
            peer,
            only_subject: only_subject(subscription.subject()),
            mode: subscription.trace_mode(),
            capture: Capture::new(&subscription.capture),
            kind: Consuming::Core,
        }
    }

    /// The spans of a JetStream consumer: named after its only filter, else its
    /// stream, with the consumer's constant attributes.
    pub(crate) fn jetstream(consumer: &JetStreamConsumer, peer: Peer) -> Self {
        let (pattern, template) =
            crate::endpoint::destination_names(consumer.pattern(), only_template(consumer));
        let durable = intern(consumer.durable_name());
        // An ordered consumer is the instance's own: no group shares it.
        let group = (!consumer.is_ordered()).then_some(durable);
        let mut constants = process_constants(template.as_deref(), group);
        constants.extend([
            Constant(key::SUBSCRIPTION_NAME, durable),
            Constant::interned(key::STREAM, consumer.stream_name()),
            Constant(key::CONSUMER, durable),
        ]);
        Self {
            tracer: Tracer::resolve(),
            name: intern(&format!("process {pattern}")),
            constants,
            peer,
            only_subject: match consumer.filters.as_slice() {
                [filter] => only_subject(filter),
                _ => None,
            },
            mode: consumer.trace,
            capture: Capture::new(&consumer.capture),
            kind: Consuming::JetStream,
        }
    }

    /// The span name, for log lines.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Whether spans go nowhere (no tracer provider): callers skip their work.
    pub(crate) fn is_off(&self) -> bool {
        self.tracer.is_off()
    }

    /// Opens the span for `message` (with its JetStream delivery, when it is
    /// one); an empty context when tracing is off.
    pub(crate) fn start(
        &self,
        message: &Message,
        delivery: Option<&Delivery<'_>>,
        context_in_body: bool,
    ) -> Context {
        if self.tracer.is_off() {
            return Context::new();
        }
        let mut attributes =
            message_attributes(&self.constants, &self.peer, self.only_subject, message, self.capture.len());
        match self.kind {
            Consuming::Core => {
                if let Some(reply) = &message.reply {
                    attributes.push(KeyValue::new(key::REPLY_TO, reply.as_str().to_owned()));
                }
            }
            Consuming::JetStream => {
                if let Some(id) = delivery.and_then(|d| d.id.clone()) {
                    attributes.push(KeyValue::new(key::MESSAGE_ID, StringValue::from(id)));
                }
                if let Some(info) = delivery.and_then(|d| d.info) {
                    attributes.extend([
                        KeyValue::new(key::SEQUENCE, info.stream_sequence as i64),
                        KeyValue::new(key::CONSUMER_SEQUENCE, info.consumer_sequence as i64),
                        KeyValue::new(key::NUM_DELIVERED, info.delivered),
                        KeyValue::new(key::NUM_PENDING, info.pending as i64),
                    ]);
                }
            }
        }
        self.capture.extend(&mut attributes, message);
        let cx = start_process(
            &self.tracer,
            self.name,
            attributes,
            remote_parent(message, context_in_body),
            self.mode,
        );
        super::log_context::with_subject(cx, || destination(self.only_subject, message.subject.as_str()))
    }
}

impl ProcessSpans {
    /// Opens the one `process` span of a batch: a new root (a batch has many
    /// parents) with `messaging.batch.message_count`, linked to each message's
    /// context (semconv's batch processing); an empty context when tracing is off.
    /// The destination is named only when every message has the same one, as
    /// the conventions ask of batches.
    pub(crate) fn start_batch<'m>(
        &self,
        messages: impl ExactSizeIterator<Item = &'m Message> + Clone,
        context_in_body: bool,
    ) -> Context {
        if self.tracer.is_off() {
            return Context::new();
        }
        let count = messages.len();
        let mut attributes =
            endpoint_attributes(&self.constants, &self.peer, semconv::emit_deprecated_names(), 2);
        attributes.push(KeyValue::new(semconv::MESSAGING_BATCH_MESSAGE_COUNT, count as i64));
        let mut subjects = messages.clone().map(|message| message.subject.as_str());
        if let Some(first) = subjects.next()
            && subjects.all(|subject| subject == first)
        {
            attributes.push(KeyValue::new(
                semconv::MESSAGING_DESTINATION_NAME,
                destination(self.only_subject, first),
            ));
        }
        let links: Vec<Link> = messages
            .filter_map(|message| remote_parent(message, context_in_body))
            .map(|remote| remote.span().span_context().clone())
            .filter(opentelemetry::trace::SpanContext::is_valid)
            .map(Link::with_context)
            .collect();
        let builder = SpanBuilder::from_name(self.name)
            .with_kind(SpanKind::Consumer)
            .with_attributes(attributes)
            .with_links(links);
        self.tracer.start(builder, &Context::new())
    }

    /// Records the items of a batch that failed: `batch.success_count`,
    /// `batch.failure_count`, a `Batch item failed` event for each (its
    /// position, stream sequence, error), and the span failed with the first.
    pub(crate) fn record_batch_failures(
        &self,
        cx: &Context,
        count: usize,
        failures: &[(usize, Option<u64>, &Failure)],
    ) {
        let span = cx.span();
        if span.is_recording() {
            span.set_attributes([
                KeyValue::new(semconv::BATCH_SUCCESS_COUNT, (count - failures.len()) as i64),
                KeyValue::new(semconv::BATCH_FAILURE_COUNT, failures.len() as i64),
            ]);
            for &(index, sequence, failure) in failures {
                let mut attributes = vec![
                    KeyValue::new(semconv::MESSAGING_NATS_BATCH_INDEX, index as i64),
                    KeyValue::new(semconv::ERROR_TYPE, failure.error_type().to_owned()),
                    KeyValue::new("exception.message", failure.message().to_owned()),
                ];
                if let Some(sequence) = sequence {
                    attributes.push(KeyValue::new(key::SEQUENCE, sequence as i64));
                }
                span.add_event("Batch item failed", attributes);
            }
        }
        if let Some(&(index, _, first)) = failures.first() {
            let message = format!(
                "{} of {count} messages failed; the first, message {index}: {}",
                failures.len(),
                first.message()
            );
            record_error(cx, self.name, Fault::of_code(first.code()), first.error_type(), &message);
        }
    }
}

/// A JetStream delivery as its spans record it: its metadata, and its message
/// id, made once for the process span and every settle span.
#[derive(Debug)]
pub(crate) struct Delivery<'a> {
    info: Option<&'a JetStreamInfo>,
    id: Option<Arc<str>>,
}

impl<'a> Delivery<'a> {
    /// The delivery of `message`; its id only when spans will be made
    /// (`traced`).
    pub(crate) fn new(message: &Message, info: Option<&'a JetStreamInfo>, traced: bool) -> Self {
        Self { info, id: traced.then(|| message_id(message, info)).flatten() }
    }
}

/// The template a consumer's spans are named after: only with a single filter.
fn only_template(consumer: &JetStreamConsumer) -> Option<&str> {
    match consumer.filters.as_slice() {
        [_] => consumer.template.as_deref(),
        _ => None,
    }
}

/// Builds `send {subject}` PRODUCER and `request {subject}` CLIENT spans, and
/// for batches a `create {subject}` PRODUCER span per message and one `send`
/// CLIENT span linking them.
#[derive(Debug)]
pub(crate) struct SendSpans {
    tracer: Tracer,
    send: Vec<Constant>,
    request: Vec<Constant>,
    create: Vec<Constant>,
    peer: Peer,
}

/// The span of one publish or request.
#[derive(Debug)]
pub(crate) struct SendSpan {
    /// The span's context; empty (every operation a no-op) when tracing is off.
    pub(crate) cx: Context,
    /// With tracing off, the current context, to propagate instead.
    ambient: Option<Context>,
}

impl SendSpan {
    /// The context to inject into the message.
    pub(crate) fn propagated(&self) -> &Context {
        self.ambient.as_ref().unwrap_or(&self.cx)
    }
}

/// Which kind of outbound span.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outbound {
    Send,
    Request,
}

impl SendSpans {
    pub(crate) fn new(peer: Peer) -> Self {
        let constants = |operation| operation_constants(operation, "send", Some("publish"));
        Self {
            tracer: Tracer::resolve(),
            send: constants("send"),
            request: constants("request"),
            create: operation_constants("create", "create", None),
            peer,
        }
    }

    /// The context a batch's spans are children of: the current one.
    pub(crate) fn batch_parent(&self) -> Context {
        current_context()
    }

    /// The `create {destination}` PRODUCER span of one message of a batch, a
    /// child of `parent`, ended at once: its context goes into that message and
    /// the batch's `send` span links to it. With tracing off, `parent` itself,
    /// to propagate.
    pub(crate) fn create(
        &self,
        parent: &Context,
        subject: &str,
        template: Option<&str>,
        body_size: usize,
        message_id: Option<&str>,
    ) -> Context {
        if self.tracer.is_off() {
            return parent.clone();
        }
        // As `start`: the strings only into a span that records.
        let mut attributes =
            endpoint_attributes(&self.create, &self.peer, semconv::emit_deprecated_names(), 4);
        attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_BODY_SIZE, body_size as i64));
        let name = format!("create {}", template.unwrap_or(subject));
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Producer).with_attributes(attributes);
        let cx = self.tracer.start_recording(builder, parent, |span| {
            use opentelemetry::trace::Span as _;
            record_destination(span, subject, template);
            if let Some(id) = message_id {
                span.set_attribute(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned()));
            }
        });
        cx.span().end();
        cx
    }

    /// The batch's `send` CLIENT span named `name`, a child of `parent`, linked
    /// to each message's `create` span. `destination` (subject, template) is
    /// given when every message goes to the same one.
    pub(crate) fn start_batch(
        &self,
        parent: &Context,
        name: String,
        destination: Option<(&str, Option<&str>)>,
        count: usize,
        created: &[Context],
    ) -> Context {
        if self.tracer.is_off() {
            return Context::new();
        }
        let mut attributes = endpoint_attributes(&self.send, &self.peer, semconv::emit_deprecated_names(), 3);
        attributes.push(KeyValue::new(semconv::MESSAGING_BATCH_MESSAGE_COUNT, count as i64));
        let links = created
            .iter()
            .map(|cx| cx.span().span_context().clone())
            .filter(opentelemetry::trace::SpanContext::is_valid)
            .map(opentelemetry::trace::Link::with_context)
            .collect();
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .with_links(links);
        self.tracer.start_recording(builder, parent, |span| {
            if let Some((subject, template)) = destination {
                record_destination(span, subject, template);
            }
        })
    }

    /// Opens the span of one publish or request, a child of the current span.
    /// With tracing off, the current context is propagated instead, so a trace
    /// still crosses a publisher that records nothing.
    ///
    /// `template` names the span (and is recorded) for typed messages; the
    /// concrete subject is always `messaging.destination.name`.
    pub(crate) fn start(
        &self,
        kind: Outbound,
        subject: &str,
        template: Option<&str>,
        body_size: usize,
    ) -> SendSpan {
        let parent = current_context();
        if self.tracer.is_off() {
            return SendSpan { cx: Context::new(), ambient: Some(parent) };
        }
        let (operation, span_kind, constants) = match kind {
            Outbound::Send => ("send", SpanKind::Producer, &self.send),
            Outbound::Request => ("request", SpanKind::Client, &self.request),
        };
        // Samplers see the name, the kind and the attributes that cost no
        // allocation (the operation's, the connection's, the body size). The
        // destination and its template are copied only into a span that
        // records: an unsampled publish makes no copy of them.
        let mut attributes = endpoint_attributes(constants, &self.peer, semconv::emit_deprecated_names(), 3);
        attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_BODY_SIZE, body_size as i64));
        let destination = template.unwrap_or(subject);
        let mut name = String::with_capacity(operation.len() + 1 + destination.len());
        name.extend([operation, " ", destination]);
        let builder = SpanBuilder::from_name(name).with_kind(span_kind).with_attributes(attributes);
        let cx = self.tracer.start_recording(builder, &parent, |span| {
            record_destination(span, subject, template);
        });
        SendSpan { cx, ambient: None }
    }
}

/// Adds an outbound message's destination (and template) to its recording
/// span: copies the sampler need not pay for when it drops the span, as the
/// span's name already says where the message goes.
fn record_destination(span: &mut opentelemetry::global::BoxedSpan, subject: &str, template: Option<&str>) {
    use opentelemetry::trace::Span as _;
    span.set_attribute(KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, subject.to_owned()));
    if let Some(template) = template {
        span.set_attribute(KeyValue::new(semconv::MESSAGING_DESTINATION_TEMPLATE, template.to_owned()));
    }
}

/// The context a new span is a child of: the current OpenTelemetry context.
/// Inside a handler it holds its `process` span; inside a `tracing` span, the
/// `tracing-opentelemetry` layer makes that span's context current on entry
/// (its default, "context activation"), so no `tracing` bridge is needed here.
fn current_context() -> Context {
    Context::current()
}

/// Whose fault a failure is: it sets how loud the failure is logged. Spans
/// record both kinds the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The client's (a 4xx code: input an extractor rejected, a `ServiceError`
    /// 4xx): logged at WARN.
    Client,
    /// The service's (5xx, panics, failed replies, settlements, publishes):
    /// logged at ERROR.
    Service,
}

impl Fault {
    /// By a service error code: 4xx is the client's.
    pub(crate) fn of_code(code: u16) -> Self {
        if (400..500).contains(&code) { Self::Client } else { Self::Service }
    }
}

/// Marks a span failed: status Error, `error.type`, and an `exception` event;
/// and logs it, as `{span name}: {message}`, at the level its [`Fault`] says.
pub(crate) fn record_failure(cx: &Context, name: &str, failure: &Failure) {
    record_error(cx, name, Fault::of_code(failure.code()), failure.error_type(), failure.message());
}

/// Marks a span failed with a low-cardinality `error_type` and a message, and logs it.
pub(crate) fn record_error(cx: &Context, name: &str, fault: Fault, error_type: &str, message: &str) {
    // A root event: the log line for fmt subscribers, which the OpenTelemetry
    // layer does not copy onto whatever `tracing` span happens to be current.
    if fault == Fault::Client {
        tracing::warn!(target: TARGET, parent: None, { error.type = error_type }, "{name}: {message}");
    } else {
        tracing::error!(target: TARGET, parent: None, { error.type = error_type }, "{name}: {message}");
    }
    super::unheard::report(|| format!("{name}: {message} (error.type {error_type})"));
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    span.set_status(Status::error(message.to_owned()));
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", error_type.to_owned()),
            KeyValue::new("exception.message", message.to_owned()),
        ],
    );
}

/// Something worth a warning about one message: a log line, and an event on its span.
pub(crate) fn warn(cx: &Context, name: &str, message: &'static str, error: Option<&dyn std::fmt::Display>) {
    match error {
        Some(error) => tracing::warn!(target: TARGET, parent: None, %error, "{name}: {message}"),
        None => tracing::warn!(target: TARGET, parent: None, "{name}: {message}"),
    }
    super::unheard::report(|| match error {
        Some(error) => format!("{name}: {message}: {error}"),
        None => format!("{name}: {message}"),
    });
    let span = cx.span();
    if span.is_recording() {
        let attributes =
            error.map(|e| vec![KeyValue::new("exception.message", e.to_string())]).unwrap_or_default();
        span.add_event(message, attributes);
    }
}

pin_project_lite::pin_project! {
    /// Polls a future with a span's context as the current OpenTelemetry context
    /// (like `FutureExt::with_context`, borrowing it), so spans started inside,
    /// `tracing` spans through the bridge included, are its children.
    pub(crate) struct InContext<'a, F> {
        cx: &'a Context,
        #[pin]
        inner: F,
    }
}

impl<'a, F> InContext<'a, F> {
    pub(crate) fn new(cx: &'a Context, inner: F) -> Self {
        Self { cx, inner }
    }
}

impl<F: Future> Future for InContext<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !this.cx.has_active_span() {
            return this.inner.poll(task);
        }
        let _attached = this.cx.clone().attach();
        this.inner.poll(task)
    }
}

/// `messaging.message.id` of a JetStream delivery: its `Nats-Msg-Id`, else
/// `{stream}:{sequence}`.
fn message_id(message: &Message, info: Option<&JetStreamInfo>) -> Option<Arc<str>> {
    use std::fmt::Write as _;
    match (message.headers.as_ref().and_then(|h| h.get(NATS_MESSAGE_ID)), info) {
        (Some(id), _) => Some(Arc::from(id.as_str())),
        (None, Some(info)) => {
            let mut id = String::with_capacity(info.stream.len() + 21);
            let _ = write!(id, "{}:{}", info.stream, info.stream_sequence);
            Some(Arc::from(id))
        }
        (None, None) => None,
    }
}

/// One settle operation's span: its name and attributes, but the connection's.
#[derive(Debug)]
struct SettleSpan {
    name: &'static str,
    constants: Vec<Constant>,
}

/// Builds a JetStream consumer's `ack|nak|term {pattern}` CLIENT settle spans,
/// children of the process span, or records settlements as its events.
#[derive(Debug)]
pub(crate) struct SettleSpans {
    tracer: Tracer,
    peer: Peer,
    record: SettleRecord,
    only_subject: Option<&'static str>,
    /// The process span's name, for log lines.
    process: &'static str,
    ack: SettleSpan,
    nak: SettleSpan,
    term: SettleSpan,
    /// A term after the dead letter was stored: `ack` = `dead_letter`.
    dead_letter: SettleSpan,
}

impl SettleSpans {
    pub(crate) fn new(consumer: &JetStreamConsumer, process: &ProcessSpans) -> Self {
        let (pattern, template) =
            crate::endpoint::destination_names(consumer.pattern(), only_template(consumer));
        let template = template.map(|template| intern(&template));
        let durable = intern(consumer.durable_name());
        let span = |operation: &'static str, settlement: Settlement| {
            let mut constants = operation_constants(operation, "settle", None);
            constants
                .extend(template.map(|template| Constant(semconv::MESSAGING_DESTINATION_TEMPLATE, template)));
            constants.extend([
                Constant(key::SUBSCRIPTION_NAME, durable),
                Constant(semconv::MESSAGING_CONSUMER_GROUP_NAME, durable),
                Constant(key::ACK, settlement.as_str()),
            ]);
            SettleSpan { name: intern(&format!("{operation} {pattern}")), constants }
        };
        Self {
            tracer: Tracer::resolve(),
            peer: process.peer.clone(),
            record: consumer.settle_record,
            only_subject: process.only_subject,
            process: process.name,
            ack: span("ack", Settlement::Ack),
            nak: span("nak", Settlement::Nak(None)),
            term: span("term", Settlement::Term),
            dead_letter: span("term", Settlement::DeadLetter),
        }
    }

    /// The process span name, for log lines.
    pub(crate) fn name(&self) -> &'static str {
        self.process
    }

    /// What the settle spans of `message` say of it: its destination (required
    /// on single-message spans) and id. Read when the message arrives, shared
    /// (not copied) by each of its settle spans; empty when none will be made.
    pub(crate) fn message(
        &self,
        process: &Context,
        message: &Message,
        delivery: &Delivery<'_>,
    ) -> SettledMessage {
        if self.record == SettleRecord::Event || !process.span().is_recording() {
            return SettledMessage::default();
        }
        let destination = destination(self.only_subject, message.subject.as_str());
        let mut attributes = Vec::with_capacity(2);
        attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, destination));
        if let Some(id) = &delivery.id {
            attributes.push(KeyValue::new(key::MESSAGE_ID, StringValue::from(id.clone())));
        }
        SettledMessage(attributes.into())
    }

    /// Records `settlement` on the process span and opens its CLIENT settle span,
    /// or (with `SettleRecord::Event`) adds an event instead and gives `None`.
    /// The process span of a batch (`in_batch`) gets no attribute: its
    /// messages settle differently.
    pub(crate) fn start(
        &self,
        process: &Context,
        message: &SettledMessage,
        settlement: Settlement,
        in_batch: bool,
    ) -> Option<Context> {
        let span = process.span();
        if !span.is_recording() {
            return None;
        }
        if !in_batch {
            span.set_attribute(KeyValue::new(key::ACK, settlement.as_str()));
        }
        if self.record == SettleRecord::Event {
            span.add_event("settle", vec![KeyValue::new(key::ACK, settlement.as_str())]);
            return None;
        }
        let settle = match settlement {
            Settlement::Ack => &self.ack,
            Settlement::Nak(_) => &self.nak,
            Settlement::Term => &self.term,
            Settlement::DeadLetter => &self.dead_letter,
        };
        let mut attributes = endpoint_attributes(&settle.constants, &self.peer, false, message.0.len());
        attributes.extend(message.0.iter().cloned());
        let builder = SpanBuilder::from_name(Cow::Borrowed(settle.name))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes);
        Some(self.tracer.start(builder, process))
    }
}

/// A message's own attributes on its settle spans (see [`SettleSpans::message`]).
#[derive(Debug, Default)]
pub(crate) struct SettledMessage(Box<[KeyValue]>);

#[cfg(test)]
mod tests {

    use opentelemetry::Value;

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
        Peer::fixed(1, "127.0.0.1", 4222)
    }

    #[test]
    fn names_are_interned_once() {
        let a = intern("process a.b");
        let b = intern("process a.b");
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn the_destination_is_the_concrete_subject_shared_only_when_it_is_the_endpoints() {
        let destination = |only: Option<&'static str>, subject: &str| {
            let attributes = message_attributes(&[], &peer(), only, &message(subject), 0);
            attributes
                .into_iter()
                .find(|kv| kv.key.as_str() == semconv::MESSAGING_DESTINATION_NAME)
                .map(|kv| kv.value)
        };
        let only = only_subject("orders.eu");
        assert_eq!(only, Some(intern("orders.eu")));
        assert_eq!(only_subject("orders.*"), None);
        // The interned string itself, not a copy.
        assert!(
            matches!(destination(only, "orders.eu"), Some(Value::String(s)) if std::ptr::eq(s.as_str(), intern("orders.eu")))
        );
        // Not the endpoint's subject (another filter, a prefix): its own value.
        assert_eq!(destination(only, "orders.us"), Some(Value::from("orders.us")));
        assert_eq!(destination(None, "orders.us"), Some(Value::from("orders.us")));
    }

    #[test]
    #[cfg(feature = "testing")]
    fn process_spans_are_roots_even_inside_an_application_span() {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        let recorder = crate::testing::SpanRecorder::install();
        let core = ProcessSpans::core(&Subscription::new("orders.*"), peer());
        let jetstream = ProcessSpans::jetstream(&JetStreamConsumer::new("ORDERS", "billing"), peer());
        let application = recorder.provider().tracer("app").start("application");
        let _attached = Context::current_with_span(application).attach();
        let _entered = tracing::info_span!("application (tracing)").entered();
        for cx in [
            core.start(&message("orders.eu"), None, false),
            jetstream.start(&message("orders.eu"), None, false),
        ] {
            let span = cx.span();
            assert!(span.span_context().is_valid());
            span.end();
        }
        let spans = recorder.spans();
        let processes: Vec<_> = spans.iter().filter(|s| s.name.starts_with("process")).collect();
        assert_eq!(processes.len(), 2);
        assert!(processes.iter().all(|s| s.parent_span_id == opentelemetry::trace::SpanId::INVALID));
    }
}
