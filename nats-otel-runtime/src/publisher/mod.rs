//! A traced publisher around `async_nats::Client`.

mod batch;

pub use batch::Outgoing;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, Subject};
use bytes::Bytes;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::endpoint::prefix::{InvalidPrefix, SubjectPrefix};
use crate::error::{BoxError, ServiceError};
use crate::error::{
    PublishError, PublishErrorKind, RequestError, RequestErrorKind, StreamPublishError,
    StreamPublishErrorKind,
};
use crate::events::ClientEvents;
use crate::handler::message::{NatsMessage, NatsPayload};
use crate::handler::reply::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use crate::otel::broker::BrokerTracing;
use crate::otel::metrics::{Instruments, SendMetrics};
use crate::otel::peer::Peer;
use crate::otel::spans::{Fault, Outbound, SendSpans, record_error};

/// Publishes and requests with a span per message and the trace context injected
/// into the headers, so subscribers continue the trace.
///
/// Cheap to clone. Spans are children of the current span: inside a handler, of
/// its `process` span.
///
/// The sampler decides before the span's strings are copied: it sees the
/// span's name (`send orders.eu`, with the destination), its kind, and the
/// attributes that cost nothing to make (system, operation, connection, body
/// size). A publish it drops costs that decision, the metrics and the
/// propagated context (unsampled), not an attribute list.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use nats_otel_runtime::Publisher;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Quote { cents: u64 }
///
/// let publisher = Publisher::new(client);
/// publisher.publish("orders.eu", "payload").await?;
/// let quote: Quote = publisher.request_json("quotes.get", &serde_json::json!({"sku": "A1"})).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    jetstream: async_nats::jetstream::Context,
    spans: Arc<SendSpans>,
    metrics: Arc<SendMetrics>,
    prefix: Option<SubjectPrefix>,
    retry: PublishRetry,
    events: Option<ClientEvents>,
    /// Which publishes ask nats-server for a trace of their path; none by default.
    broker: Option<BrokerTracing>,
}

/// How a JetStream publish is retried when it fails for a reason that may pass:
/// no acknowledgement in time, the connection lost before the ack, no responders
/// (the stream's server restarting, or its leader being elected), JetStream
/// answering 503 (temporarily unavailable), or too many acks awaited.
///
/// Every attempt sends the same headers, so give the message a `Nats-Msg-Id`
/// ([`StreamPublish::message_id`] or [`derived_message_id`](StreamPublish::derived_message_id)):
/// an attempt whose ack was lost is then stored once, not twice, as long as the
/// retries end within the stream's duplicate window (2 minutes by default).
/// Without an id a retry can store the message twice.
///
/// Errors that will not pass (wrong expected stream, payload too large, invalid
/// subject) are never retried. As a stream that does not exist also shows as "no
/// responders", a publish to a missing stream fails only after the last attempt.
///
/// Each failed attempt that is retried is a `publish retry` event on the `send`
/// span (`messaging.nats.jetstream.publish_attempt`, `error.type`,
/// `exception.message`); the span's `messaging.nats.jetstream.publish_attempts`
/// says how many attempts were made. A publish that succeeds after retries keeps
/// the span's status unset.
///
/// Waits are jittered (each between half and all of its nominal length, at
/// random), so that publishers failing together (a fleet restarting, a stream
/// leader elected) do not retry in lockstep; [`jitter(false)`](Self::jitter)
/// makes them exact.
///
/// ```
/// use std::time::Duration;
/// use nats_otel_runtime::publisher::PublishRetry;
/// // 1 attempt + up to 7 retries, waiting about 100 ms, 200 ms, 400 ms … capped at 2 s.
/// let retry = PublishRetry::new(8, Duration::from_millis(100)).max_backoff(Duration::from_secs(2));
/// assert_eq!(retry.attempts(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRetry {
    attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    jitter: bool,
}

impl Default for PublishRetry {
    fn default() -> Self {
        Self::NONE
    }
}

impl PublishRetry {
    /// One attempt, no retry: the default, so a failure is reported at once.
    pub const NONE: Self =
        Self { attempts: 1, backoff: Duration::ZERO, max_backoff: Duration::ZERO, jitter: true };

    /// Up to `attempts` attempts in all (at least 1), waiting `backoff` before the
    /// first retry and twice as long before each next one, up to 5 s (see
    /// [`max_backoff`](Self::max_backoff)).
    pub fn new(attempts: u32, backoff: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            backoff,
            max_backoff: DEFAULT_MAX_BACKOFF.max(backoff),
            jitter: true,
        }
    }

    /// Caps the wait between two attempts.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Jittered waits (the default) or exact ones.
    #[must_use]
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// How many attempts are made at most.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before attempt `attempt + 1`, after `attempt` failed (1-based):
    /// the nominal wait, or with jitter a random wait between its half and all of it.
    fn delay_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let nominal = self.backoff.saturating_mul(1u32 << doublings).min(self.max_backoff);
        if !self.jitter {
            return nominal;
        }
        let half = nominal / 2;
        half + random_up_to(nominal - half)
    }
}

/// A random duration in `0..=max`: std's per-instance random hash keys are
/// randomness enough to spread retries, without a random-number crate.
fn random_up_to(max: Duration) -> Duration {
    use std::hash::BuildHasher;
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    Duration::from_nanos(random % nanos.saturating_add(1).max(1))
}

/// Default cap of [`PublishRetry`] waits.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a failed JetStream publish may succeed when tried again.
fn transient(error: &async_nats::jetstream::context::PublishError) -> bool {
    use async_nats::jetstream::context::PublishErrorKind as Js;
    match error.kind() {
        // `StreamNotFound` is how async-nats reports "no responders".
        Js::TimedOut | Js::BrokenPipe | Js::StreamNotFound | Js::MaxAckPending => true,
        Js::Other => std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
            .is_some_and(|api| {
                api.code() == 503
                    || api.error_code() == async_nats::jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE
            }),
        _ => false,
    }
}

/// Options of a JetStream publish.
///
/// ```
/// use nats_otel_runtime::publisher::StreamPublish;
/// let options = StreamPublish::new().message_id("order-42").expected_stream("ORDERS");
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamPublish {
    headers: HeaderMap,
    message_id: Option<MessageId>,
    expected_stream: Option<String>,
    retry: Option<PublishRetry>,
}

#[derive(Debug, Clone)]
enum MessageId {
    Given(String),
    Derived,
}

impl StreamPublish {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Headers to send (the trace context is added).
    #[must_use]
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// `Nats-Msg-Id`: the stream drops a second message with the same id within its
    /// duplicate window.
    #[must_use]
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(MessageId::Given(id.into()));
        self
    }

    /// `Nats-Msg-Id` derived from the subject and payload, so publishing the same
    /// content twice (a retry after a lost ack, say) is stored once.
    #[must_use]
    pub fn derived_message_id(mut self) -> Self {
        self.message_id = Some(MessageId::Derived);
        self
    }

    /// Fails unless the subject is captured by this stream.
    #[must_use]
    pub fn expected_stream(mut self, stream: impl Into<String>) -> Self {
        self.expected_stream = Some(stream.into());
        self
    }

    /// Retries this publish as `retry` says, instead of the publisher's policy
    /// ([`Publisher::retry`]). Give it a message id too: see [`PublishRetry`].
    #[must_use]
    pub fn retry(mut self, retry: PublishRetry) -> Self {
        self.retry = Some(retry);
        self
    }
}

/// What a failed JetStream publish means to the caller; `expecting` when it
/// named an expected stream.
fn classify(e: async_nats::jetstream::context::PublishError, expecting: bool) -> StreamPublishError {
    use async_nats::jetstream::context::PublishErrorKind as Js;
    let kind = match e.kind() {
        Js::StreamNotFound => StreamPublishErrorKind::StreamNotFound,
        Js::TimedOut => StreamPublishErrorKind::TimedOut,
        Js::MaxPayloadExceeded => StreamPublishErrorKind::MaxPayloadExceeded,
        _ if expecting && e.to_string().contains("expected stream") => {
            StreamPublishErrorKind::WrongExpectedStream
        }
        _ => StreamPublishErrorKind::Other,
    };
    StreamPublishError::with_source(kind, e)
}

/// A stable id for `subject` and `payload`: the first 128 bits of their SHA-256,
/// in hex. The stream drops a message whose id it has seen in its duplicate
/// window, so ids of different contents must not collide: 64-bit hashes meet by
/// chance within a few billion messages, 128-bit ones never in practice.
fn derived_id(subject: &str, payload: &[u8]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    // The length first, so no subject/payload split hashes like another.
    hasher.update((subject.len() as u64).to_le_bytes());
    hasher.update(subject.as_bytes());
    hasher.update(payload);
    let digest = hasher.finalize();
    let mut id = String::with_capacity(32);
    for byte in &digest[..16] {
        use std::fmt::Write;
        let _ = write!(id, "{byte:02x}");
    }
    id
}

impl Publisher {
    /// Wraps a connected client.
    pub fn new(client: Client) -> Self {
        let peer = Peer::of(&client);
        let metrics = Arc::new(SendMetrics::new(Instruments::global(), peer.clone()));
        let spans = Arc::new(SendSpans::new(peer));
        let jetstream = async_nats::jetstream::new(client.clone());
        Self {
            client,
            jetstream,
            spans,
            metrics,
            prefix: None,
            retry: PublishRetry::NONE,
            events: None,
            broker: None,
        }
    }

    /// Asks nats-server (2.11+) to trace the path of sampled publishes, as
    /// `tracing` says (which share, where the reports go): each server the
    /// message crosses reports what it did with it, and a
    /// [`Collector`](crate::broker_trace::Collector) on that subject turns the
    /// reports into spans in the message's trace. Off by default: no header,
    /// nothing to pay.
    ///
    /// ```no_run
    /// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use nats_otel_runtime::Publisher;
    /// use nats_otel_runtime::broker::BrokerTracing;
    /// let publisher = Publisher::new(client).broker_tracing(BrokerTracing::new("traces.broker")?.ratio(0.01));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn broker_tracing(mut self, tracing: BrokerTracing) -> Self {
        self.broker = Some(tracing);
        self
    }

    /// Adds `Nats-Trace-Dest` when broker tracing is on and chooses this publish.
    fn mark_for_broker(&self, cx: &Context, headers: &mut HeaderMap) {
        if let Some(broker) = &self.broker {
            broker.mark(cx, headers);
        }
    }

    /// Puts `prefix` (`"prod"`, `"staging.eu"`) in front of every subject this
    /// publisher sends to, typed messages included; spans and metrics show the full
    /// subject and template. Give the [`NatsService`](crate::NatsService::subject_prefix)
    /// the same prefix. Checked here, once.
    ///
    /// ```no_run
    /// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use nats_otel_runtime::Publisher;
    /// let publisher = Publisher::new(client).with_subject_prefix("prod")?;
    /// publisher.publish("orders.eu", "…").await?; // sent to `prod.orders.eu`
    /// # Ok(()) }
    /// ```
    pub fn with_subject_prefix(mut self, prefix: &str) -> Result<Self, InvalidPrefix> {
        self.prefix = Some(SubjectPrefix::parse(prefix)?);
        Ok(self)
    }

    /// `subject` with the prefix, if there is one.
    fn full<'a>(&self, subject: &'a str) -> Cow<'a, str> {
        match &self.prefix {
            Some(prefix) => Cow::Owned(prefix.apply(subject)),
            None => Cow::Borrowed(subject),
        }
    }

    /// Retries JetStream publishes ([`publish_to_stream`](Self::publish_to_stream) and
    /// friends) as `retry` says, unless a publish sets its own
    /// ([`StreamPublish::retry`]). Core publishes and requests are never retried:
    /// core NATS has no acknowledgement to wait for, and a request is not known to
    /// be idempotent.
    #[must_use]
    pub fn retry(mut self, retry: PublishRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Reports publishes the server's permissions deny as `PermissionDenied` errors
    /// naming the subject, from the connection's events (attach `events` to the
    /// connect options first: [`ClientEvents::attach`]).
    ///
    /// nats-server drops a message the connection may not publish and reports it
    /// only with an asynchronous error; the publish call itself succeeded. So:
    ///
    /// - **requests** ([`request`](Self::request) and friends) and **JetStream
    ///   publishes** ([`publish_to_stream`](Self::publish_to_stream) and friends)
    ///   wait for a reply anyway: they fail with
    ///   [`RequestErrorKind::PermissionDenied`] /
    ///   [`StreamPublishErrorKind::PermissionDenied`] as soon as the server reports
    ///   the violation, instead of timing out;
    /// - **fire-and-forget publishes** ([`publish`](Self::publish) and friends)
    ///   cannot wait: the first one to a denied subject returns `Ok`. Later ones
    ///   still send (the server decides), but return
    ///   [`PublishErrorKind::PermissionDenied`] and mark their span failed while
    ///   the server has denied that subject within the last minute.
    ///
    /// The server reports a violation by subject, not by message, so a denial is
    /// attributed to every publish to that subject on this connection at that
    /// time; with permissions changed by a server reload, a fire-and-forget
    /// publish may report a stale denial for up to a minute.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use nats_otel_runtime::{ClientEvents, Publisher, RequestErrorKind};
    ///
    /// let events = ClientEvents::new();
    /// let client = events.attach(async_nats::ConnectOptions::new()).connect("nats://127.0.0.1:4222").await?;
    /// let publisher = Publisher::new(client).events(&events);
    /// match publisher.request("admin.reset", "").await {
    ///     Err(e) if e.kind() == RequestErrorKind::PermissionDenied => eprintln!("{e}"), // names `admin.reset`
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn events(mut self, events: &ClientEvents) -> Self {
        self.events = Some(events.clone());
        self
    }

    /// Runs `operation` (which publishes to `subject` and waits for an answer),
    /// failing with `denied()` as soon as the server reports that publish denied.
    async fn unless_denied<T, E>(
        &self,
        subject: &str,
        operation: impl std::future::Future<Output = Result<T, E>>,
        denied: impl FnOnce() -> E,
    ) -> Result<T, E> {
        let Some(events) = &self.events else { return operation.await };
        // Listening starts here, before `operation` first runs and sends.
        let denial = events.denial(subject);
        tokio::select! {
            biased;
            result = operation => result,
            () = denial => Err(denied()),
        }
    }

    /// Publishes to a JetStream stream and waits for its acknowledgement, in a
    /// `send {subject}` PRODUCER span that records the ack
    /// (`messaging.nats.jetstream.stream`, `.sequence`, `.duplicate`).
    pub async fn publish_to_stream(
        &self,
        subject: impl AsRef<str>,
        payload: impl Into<Bytes>,
    ) -> Result<async_nats::jetstream::publish::PublishAck, StreamPublishError> {
        self.publish_to_stream_with(subject, StreamPublish::new(), payload).await
    }

    /// Publishes `value` as JSON to a stream.
    pub async fn publish_json_to_stream<T: Serialize + ?Sized>(
        &self,
        subject: impl AsRef<str>,
        options: StreamPublish,
        value: &T,
    ) -> Result<async_nats::jetstream::publish::PublishAck, StreamPublishError> {
        let payload = serde_json::to_vec(value)
            .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::Encode, e))?;
        self.publish_to_stream_with(subject, options, payload).await
    }

    /// Publishes to a stream with options: message id, expected stream, headers.
    pub async fn publish_to_stream_with(
        &self,
        subject: impl AsRef<str>,
        options: StreamPublish,
        payload: impl Into<Bytes>,
    ) -> Result<async_nats::jetstream::publish::PublishAck, StreamPublishError> {
        self.stream_publish(&self.full(subject.as_ref()), None, options, payload.into()).await
    }

    /// Publishes a typed message to its own subject on JetStream, in a
    /// `send {template}` span; for a type tied to a stream (`#[nats(stream = …)]`)
    /// the server checks that the subject lands in that stream (`expected_stream`,
    /// unless `options` name another).
    ///
    /// ```no_run
    /// # use nats_otel_runtime::prelude::*;
    /// # use nats_otel_runtime::publisher::StreamPublish;
    /// #[derive(Serialize, Deserialize, NatsMessage)]
    /// #[nats(subject = "orders.{region}.created", stream = "ORDERS")]
    /// struct OrderCreated { region: String, id: u64 }
    ///
    /// # async fn demo(publisher: Publisher) -> Result<(), Box<dyn std::error::Error>> {
    /// let order = OrderCreated { region: "eu".into(), id: 7 };
    /// let ack = publisher.publish_message_to_stream(&order, StreamPublish::new().derived_message_id()).await?;
    /// assert_eq!(ack.stream, "ORDERS");
    /// # Ok(()) }
    /// ```
    pub async fn publish_message_to_stream<M: NatsMessage>(
        &self,
        message: &M,
        mut options: StreamPublish,
    ) -> Result<async_nats::jetstream::publish::PublishAck, StreamPublishError> {
        let subject = message
            .subject()
            .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::InvalidSubject, e))?;
        let payload = message
            .encode()
            .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::Encode, e))?;
        if options.expected_stream.is_none() {
            options.expected_stream = M::STREAM.map(str::to_owned);
        }
        let template = self.full(M::TEMPLATE);
        self.stream_publish(&self.full(&subject), Some(&template), options, payload).await
    }

    async fn stream_publish(
        &self,
        subject: &str,
        template: Option<&str>,
        options: StreamPublish,
        payload: Bytes,
    ) -> Result<async_nats::jetstream::publish::PublishAck, StreamPublishError> {
        let body_size = payload.len();
        let started = std::time::Instant::now();
        let send = self.spans.start(Outbound::Send, subject, template, body_size);
        let cx = &send.cx;
        let span = cx.span();
        let StreamPublish { mut headers, message_id, expected_stream, retry } = options;
        let retry = retry.unwrap_or(self.retry);
        let mut attempts = 0u32;
        let result = async {
            let nats_subject = outbound_subject(subject, template)
                .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::InvalidSubject, e))?;
            if let Some(id) = message_id {
                let id = match id {
                    MessageId::Given(id) => id,
                    MessageId::Derived => derived_id(subject, &payload),
                };
                span.set_attribute(KeyValue::new("messaging.message.id", id.clone()));
                let value = id
                    .parse::<async_nats::HeaderValue>()
                    .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::Other, e))?;
                headers.insert(async_nats::header::NATS_MESSAGE_ID, value);
            }
            if let Some(stream) = &expected_stream {
                let value = stream
                    .parse::<async_nats::HeaderValue>()
                    .map_err(|e| StreamPublishError::with_source(StreamPublishErrorKind::Other, e))?;
                headers.insert(async_nats::header::NATS_EXPECTED_STREAM, value);
            }
            crate::otel::propagation::inject_context(send.propagated(), &mut headers);
            self.mark_for_broker(send.propagated(), &mut headers);
            let classify = |e| classify(e, expected_stream.is_some());
            let publish = async {
                loop {
                    attempts += 1;
                    let sent = async {
                        let ack = self
                            .jetstream
                            .publish_with_headers(nats_subject.clone(), headers.clone(), payload.clone())
                            .await?;
                        ack.await
                    }
                    .await;
                    match sent {
                        Ok(ack) => break Ok(ack),
                        Err(e) if attempts < retry.attempts && transient(&e) => {
                            let delay = retry.delay_after(attempts);
                            let error = classify(e);
                            let attempt = i64::from(attempts);
                            let retry_in_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                            let message = format!("{error:#}");
                            tracing::warn!(target: crate::otel::TARGET, parent: None, attempt, retry_in_ms,
                                "send {subject}: publish retry: {message}");
                            span.add_event(
                                "publish retry",
                                vec![
                                    KeyValue::new("messaging.nats.jetstream.publish_attempt", attempt),
                                    KeyValue::new("error.type", error.kind().error_type()),
                                    KeyValue::new("exception.message", message),
                                    KeyValue::new("retry_in_ms", retry_in_ms),
                                ],
                            );
                            tokio::time::sleep(delay).await;
                        }
                        Err(e) => break Err(classify(e)),
                    }
                }
            };
            self.unless_denied(subject, publish, || {
                StreamPublishError::new(StreamPublishErrorKind::PermissionDenied)
                    .context(denied_context(subject))
            })
            .await
        };
        let result = result.await;
        if attempts > 0 {
            span.set_attribute(KeyValue::new(
                "messaging.nats.jetstream.publish_attempts",
                i64::from(attempts),
            ));
        }
        match &result {
            Ok(ack) => span.set_attributes([
                KeyValue::new("messaging.nats.jetstream.stream", ack.stream.clone()),
                KeyValue::new("messaging.nats.jetstream.sequence", ack.sequence as i64),
                KeyValue::new("messaging.nats.jetstream.duplicate", ack.duplicate),
            ]),
            Err(e) => record_error(
                cx,
                &format!("send {subject}"),
                Fault::Service,
                e.kind().error_type(),
                &format!("{e:#}"),
            ),
        }
        span.end();
        let error_type = result.as_ref().err().map(|e| e.kind().error_type());
        self.metrics.sent(Outbound::Send, template, body_size, started.elapsed(), error_type);
        result
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Publishes `payload` to `subject` in a `send {subject}` PRODUCER span.
    pub async fn publish(
        &self,
        subject: impl AsRef<str>,
        payload: impl Into<Bytes>,
    ) -> Result<(), PublishError> {
        self.publish_with_headers(subject, HeaderMap::new(), payload).await
    }

    /// Publishes with headers; the trace context is added, other headers are kept.
    pub async fn publish_with_headers(
        &self,
        subject: impl AsRef<str>,
        headers: HeaderMap,
        payload: impl Into<Bytes>,
    ) -> Result<(), PublishError> {
        self.send(&self.full(subject.as_ref()), None, headers, payload.into()).await
    }

    /// Publishes a typed message to its own subject, encoded with its codec, in a
    /// `send {template}` span (`orders.{region}.created`): the concrete subject is
    /// `messaging.destination.name`, the template `messaging.destination.template`.
    ///
    /// A field value that cannot be a subject token is an
    /// [`InvalidSubject`](PublishErrorKind::InvalidSubject) error, never a wrong subject.
    pub async fn publish_message<M: NatsMessage>(&self, message: &M) -> Result<(), PublishError> {
        let subject =
            message.subject().map_err(|e| PublishError::with_source(PublishErrorKind::InvalidSubject, e))?;
        let payload = message.encode().map_err(|e| PublishError::with_source(PublishErrorKind::Encode, e))?;
        let template = self.full(M::TEMPLATE);
        self.send(&self.full(&subject), Some(&template), HeaderMap::new(), payload).await
    }

    async fn send(
        &self,
        subject: &str,
        template: Option<&str>,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let body_size = payload.len();
        let started = std::time::Instant::now();
        let send = self.spans.start(Outbound::Send, subject, template, body_size);
        let cx = &send.cx;
        let result = async {
            let subject = outbound_subject(subject, template)
                .map_err(|e| PublishError::with_source(PublishErrorKind::InvalidSubject, e))?;
            crate::otel::propagation::inject_context(send.propagated(), &mut headers);
            self.mark_for_broker(send.propagated(), &mut headers);
            // Known before sending; sent anyway, so the server decides afresh.
            let denied = self.events.as_ref().is_some_and(|events| events.recently_denied(&subject));
            let context = denied.then(|| denied_context(&subject));
            self.client
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| PublishError::with_source(PublishErrorKind::Send, e))?;
            match context {
                Some(context) => Err(PublishError::new(PublishErrorKind::PermissionDenied).context(context)),
                None => Ok(()),
            }
        }
        .await;
        let error_type = result.as_ref().err().map(|e| publish_error_type(e.kind()));
        if let Err(e) = &result {
            record_error(
                cx,
                &format!("send {subject}"),
                Fault::Service,
                publish_error_type(e.kind()),
                &format!("{e:#}"),
            );
        }
        cx.span().end();
        self.metrics.sent(Outbound::Send, template, body_size, started.elapsed(), error_type);
        result
    }

    /// Publishes `value` encoded as JSON.
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        subject: impl AsRef<str>,
        value: &T,
    ) -> Result<(), PublishError> {
        let payload =
            serde_json::to_vec(value).map_err(|e| PublishError::with_source(PublishErrorKind::Encode, e))?;
        self.publish(subject, payload).await
    }

    /// Sends a request in a `request {subject}` CLIENT span and waits for the reply
    /// (the client's request timeout applies).
    ///
    /// A reply with `Nats-Service-Error` headers is an error of kind
    /// [`RequestErrorKind::Service`] whose [`service_error`](RequestError::service_error)
    /// gives the code and description.
    pub async fn request(
        &self,
        subject: impl AsRef<str>,
        payload: impl Into<Bytes>,
    ) -> Result<Message, RequestError> {
        self.request_with_headers(subject, HeaderMap::new(), payload).await
    }

    /// Sends a request with headers; the trace context is added, other headers are kept.
    pub async fn request_with_headers(
        &self,
        subject: impl AsRef<str>,
        headers: HeaderMap,
        payload: impl Into<Bytes>,
    ) -> Result<Message, RequestError> {
        self.traced_request(&self.full(subject.as_ref()), None, headers, payload.into()).await
    }

    async fn traced_request(
        &self,
        subject: &str,
        template: Option<&str>,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Message, RequestError> {
        let body_size = payload.len();
        let started = std::time::Instant::now();
        let send = self.spans.start(Outbound::Request, subject, template, body_size);
        let cx = &send.cx;
        let result = async {
            let nats_subject = outbound_subject(subject, template)
                .map_err(|e| RequestError::with_source(RequestErrorKind::InvalidSubject, e))?;
            crate::otel::propagation::inject_context(send.propagated(), &mut headers);
            self.mark_for_broker(send.propagated(), &mut headers);
            let request = async {
                self.client.request_with_headers(nats_subject, headers, payload).await.map_err(|e| {
                    let kind = match e.kind() {
                        async_nats::RequestErrorKind::TimedOut => RequestErrorKind::TimedOut,
                        async_nats::RequestErrorKind::NoResponders => RequestErrorKind::NoResponders,
                        _ => RequestErrorKind::Other,
                    };
                    RequestError::with_source(kind, e)
                })
            };
            let reply = self
                .unless_denied(subject, request, || {
                    RequestError::new(RequestErrorKind::PermissionDenied).context(denied_context(subject))
                })
                .await?;
            match service_error(&reply) {
                Some(error) => {
                    let code = format!("code {}", error.code());
                    Err(RequestError::with_source(RequestErrorKind::Service, error).context(code))
                }
                None => Ok(reply),
            }
        };
        let result = result.await;
        let error_type = result.as_ref().err().map(|e| match e.service_error() {
            Some(service) => service.code().to_string(),
            None => request_error_type(e.kind()).to_owned(),
        });
        if let (Err(e), Some(error_type)) = (&result, &error_type) {
            let fault = e.service_error().map_or(Fault::Service, |service| Fault::of_code(service.code()));
            record_error(cx, &format!("request {subject}"), fault, error_type, &format!("{e:#}"));
        }
        cx.span().end();
        self.metrics.sent(Outbound::Request, template, body_size, started.elapsed(), error_type.as_deref());
        result
    }

    /// Sends a typed request to its own subject and decodes the reply type it
    /// declares (`#[nats(reply = Quote)]`), in a `request {template}` CLIENT span.
    ///
    /// Does not compile for message types without a reply type: events are
    /// published, not requested.
    pub async fn request_message<M>(&self, message: &M) -> Result<M::Reply, RequestError>
    where
        M: NatsMessage,
        M::Reply: NatsPayload,
    {
        let subject =
            message.subject().map_err(|e| RequestError::with_source(RequestErrorKind::InvalidSubject, e))?;
        let payload = message.encode().map_err(|e| RequestError::with_source(RequestErrorKind::Encode, e))?;
        let template = self.full(M::TEMPLATE);
        let reply =
            self.traced_request(&self.full(&subject), Some(&template), HeaderMap::new(), payload).await?;
        <M::Reply as NatsPayload>::decode(&reply.payload)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Decode, e))
    }

    /// Sends `request` as JSON and decodes the JSON reply.
    pub async fn request_json<Req, Resp>(
        &self,
        subject: impl AsRef<str>,
        request: &Req,
    ) -> Result<Resp, RequestError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let payload = serde_json::to_vec(request)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Encode, e))?;
        let reply = self.request(subject, payload).await?;
        serde_json::from_slice(&reply.payload)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Decode, e))
    }
}

/// The context line of a `PermissionDenied` error: the subject.
fn denied_context(subject: &str) -> String {
    format!("the server denies publishing to `{subject}`")
}

/// The subject to send to. A typed message's subject was rendered from its
/// template with checked token values, which are data: NATS allows braces there
/// (`{x}` is a capture only in code), so it is checked against the template. Any
/// other subject is checked as written in code.
fn outbound_subject(subject: &str, template: Option<&str>) -> Result<Subject, BoxError> {
    match template {
        Some(template) if nats_otel_rules::matches(template, subject) => Ok(Subject::from(subject)),
        Some(template) => {
            Err(format!("`{subject}` does not match the message type's subject `{template}`").into())
        }
        None => {
            nats_otel_rules::validate(subject, nats_otel_rules::Usage::Publish)?;
            Ok(Subject::from(subject))
        }
    }
}

/// A `Nats-Service-Error` reply, as sent by nats-otel, async-nats' service API and nats.go micro.
fn service_error(reply: &Message) -> Option<ServiceError> {
    let headers = reply.headers.as_ref()?;
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?;
    let code = code.as_str().trim().parse().unwrap_or(500);
    let description = headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str().to_owned()).unwrap_or_default();
    Some(ServiceError::new(code, description))
}

fn publish_error_type(kind: PublishErrorKind) -> &'static str {
    match kind {
        PublishErrorKind::InvalidSubject => "invalid_subject",
        PublishErrorKind::Encode => "encode",
        PublishErrorKind::Send => "async_nats::PublishError",
        PublishErrorKind::PermissionDenied => "permission_denied",
    }
}

fn request_error_type(kind: RequestErrorKind) -> &'static str {
    match kind {
        RequestErrorKind::InvalidSubject => "invalid_subject",
        RequestErrorKind::Encode => "encode",
        RequestErrorKind::TimedOut => "timeout",
        RequestErrorKind::NoResponders => "no_responders",
        RequestErrorKind::Service => "service_error",
        RequestErrorKind::Decode => "decode",
        RequestErrorKind::PermissionDenied => "permission_denied",
        RequestErrorKind::Other => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_double_up_to_the_cap() {
        let retry = PublishRetry::new(10, Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500))
            .jitter(false);
        let waits: Vec<_> = (1..=5).map(|attempt| retry.delay_after(attempt).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(PublishRetry::new(0, Duration::ZERO).attempts(), 1, "at least one attempt");
        assert_eq!(PublishRetry::default(), PublishRetry::NONE);
        let huge = PublishRetry::new(u32::MAX, Duration::from_secs(1)).jitter(false);
        assert_eq!(huge.delay_after(u32::MAX), DEFAULT_MAX_BACKOFF, "no overflow");
    }

    #[test]
    fn jittered_waits_spread_between_half_and_all_of_the_nominal_wait() {
        let retry = PublishRetry::new(10, Duration::from_millis(100));
        let waits: Vec<Duration> = (0..1000).map(|_| retry.delay_after(3)).collect();
        let (low, high) = (Duration::from_millis(200), Duration::from_millis(400));
        assert!(waits.iter().all(|wait| (low..=high).contains(wait)), "{waits:?}");
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 900, "spread, not lockstep: {} distinct of 1000", distinct.len());
        let mean = waits.iter().sum::<Duration>() / 1000;
        assert!((Duration::from_millis(280)..=Duration::from_millis(320)).contains(&mean), "{mean:?}");
        assert_eq!(PublishRetry::new(3, Duration::ZERO).delay_after(1), Duration::ZERO);
    }

    #[test]
    fn derived_ids_are_128_bits_and_tell_subject_from_payload() {
        let id = derived_id("orders.eu", b"{}");
        assert_eq!(id.len(), 32, "128 bits in hex");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, derived_id("orders.eu", b"{}"), "stable");
        assert_ne!(derived_id("a.b", b"c"), derived_id("a.bc", b""), "the split is part of the id");
        assert_ne!(id, derived_id("orders.eu", b"{ }"));
    }
}
