//! JetStream pull consumers: the consumer's configuration, the delivery metadata
//! extractor, and the loop that settles every message from its handler's result.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};

use crate::dead_letter::{self, DeadLetterRoute, DeadLetters, Letter, Original, Reason};
use crate::error::{ServeError, ServeErrorKind};
use crate::keep_alive::{AckWait, Pace, with_progress};
use crate::metrics::{EndpointIdentity, EndpointMetrics};
use crate::peer::Peer;
use crate::pulling::{PullSettings, Pulling, Work};
use crate::serving::Step;
use crate::settle::{Policy, Settlement};
use crate::spans::{self, JetStreamSpans};
use crate::{Extractor, FromMessage, Handler, Incoming, Rejection, TraceMode};
use futures_util::future::Either;

/// Where a new consumer starts in the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deliver {
    /// From the first message in the stream (default).
    #[default]
    All,
    /// Only messages published after the consumer is created.
    New,
    /// From the last message in the stream.
    Last,
    /// From the last message of each subject.
    LastPerSubject,
}

/// When an ack counts as done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckMode {
    /// Send the ack and go on (default): fastest; a lost ack means a redelivery.
    #[default]
    Fire,
    /// Wait for the server to confirm each settlement (double ack).
    Confirmed,
}

/// How settlements are recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SettleRecord {
    /// A CLIENT `ack|nak|term {pattern}` span, child of the process span (default).
    #[default]
    Span,
    /// An event on the process span: less detail, less cost.
    Event,
}

/// Default in-flight limit of a consumer when none is given.
pub const DEFAULT_JETSTREAM_CONCURRENCY: usize = 32;

/// Default number of messages asked for per pull (as async-nats' own default).
pub const DEFAULT_BATCH: usize = 200;

/// A durable JetStream pull consumer and how its messages are handled.
///
/// `#[jetstream_consumer]` builds one from its (compile-time checked) arguments;
/// without the macro, pass one to [`Service::consume`](crate::Service::consume).
///
/// ```
/// use std::time::Duration;
/// use nats_otel_runtime::JetStreamConsumer;
/// let billing = JetStreamConsumer::new("ORDERS", "billing")
///     .filter("orders.*.created")
///     .max_deliver(5)
///     .backoff([Duration::from_secs(1), Duration::from_secs(10)])
///     .dead_letter("orders.dead");
/// assert_eq!(billing.stream_name(), "ORDERS");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConsumer {
    pub(crate) stream: Cow<'static, str>,
    pub(crate) durable: Cow<'static, str>,
    pub(crate) filters: Vec<Cow<'static, str>>,
    pub(crate) template: Option<Cow<'static, str>>,
    pub(crate) deliver: Deliver,
    pub(crate) ack_wait: Option<Duration>,
    pub(crate) max_deliver: Option<i64>,
    pub(crate) backoff: Vec<Duration>,
    pub(crate) max_ack_pending: Option<i64>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) batch: Option<usize>,
    pub(crate) ack: AckMode,
    pub(crate) create: bool,
    pub(crate) dead_letter: Option<Cow<'static, str>>,
    pub(crate) dead_letter_route: DeadLetterRoute,
    pub(crate) trace: TraceMode,
    pub(crate) settle_record: SettleRecord,
    pub(crate) name: Option<Cow<'static, str>>,
    /// Tokens of the service's subject prefix at the front of each filter.
    pub(crate) prefix_tokens: usize,
    pub(crate) capture: crate::capture::CaptureConfig,
}

impl JetStreamConsumer {
    /// The durable consumer `durable` on `stream`.
    pub fn new(stream: impl Into<Cow<'static, str>>, durable: impl Into<Cow<'static, str>>) -> Self {
        Self {
            stream: stream.into(),
            durable: durable.into(),
            filters: Vec::new(),
            template: None,
            deliver: Deliver::All,
            ack_wait: None,
            max_deliver: None,
            backoff: Vec::new(),
            max_ack_pending: None,
            concurrency: None,
            batch: None,
            ack: AckMode::Fire,
            create: true,
            dead_letter: None,
            dead_letter_route: DeadLetterRoute::Stream,
            trace: TraceMode::Parent,
            settle_record: SettleRecord::Span,
            name: None,
            prefix_tokens: 0,
            capture: crate::capture::CaptureConfig::default(),
        }
    }

    /// Puts the service's subject prefix in front of the filters, the template and
    /// the dead-letter subject. The stream and consumer names stay as they are.
    pub(crate) fn apply_prefix(&mut self, prefix: &crate::prefix::SubjectPrefix) {
        for filter in &mut self.filters {
            *filter = prefix.apply(filter).into();
        }
        if let Some(template) = &mut self.template {
            *template = prefix.apply(template).into();
        }
        if let Some(dead_letter) = &mut self.dead_letter {
            *dead_letter = prefix.apply(dead_letter).into();
        }
        self.prefix_tokens = prefix.tokens();
    }

    /// Adds a filter subject (several are allowed).
    #[must_use]
    pub fn filter(mut self, subject: impl Into<Cow<'static, str>>) -> Self {
        self.filters.push(subject.into());
        self
    }

    /// The template with `{captures}` the only filter was derived from
    /// (`orders.{region}.created` for `orders.*.created`): spans are named after it
    /// and record it as `messaging.destination.template`.
    #[must_use]
    pub fn template(mut self, template: impl Into<Cow<'static, str>>) -> Self {
        self.template = Some(template.into());
        self
    }

    /// Where a new consumer starts.
    #[must_use]
    pub fn deliver(mut self, deliver: Deliver) -> Self {
        self.deliver = deliver;
        self
    }

    /// How long the server waits for an ack before redelivering (server default 30 s).
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = Some(ack_wait);
        self
    }

    /// How many deliveries a message gets; the last failing one is termed or dead-lettered.
    #[must_use]
    pub fn max_deliver(mut self, max_deliver: i64) -> Self {
        self.max_deliver = Some(max_deliver);
        self
    }

    /// Redelivery delays by delivery number (also given to the server, which uses
    /// them for ack timeouts).
    #[must_use]
    pub fn backoff(mut self, backoff: impl IntoIterator<Item = Duration>) -> Self {
        self.backoff = backoff.into_iter().collect();
        self
    }

    /// How many messages may be unacknowledged at once.
    #[must_use]
    pub fn max_ack_pending(mut self, max_ack_pending: i64) -> Self {
        self.max_ack_pending = Some(max_ack_pending);
        self
    }

    /// How many handlers run at once (default [`DEFAULT_JETSTREAM_CONCURRENCY`], at
    /// most `max_ack_pending`).
    #[must_use]
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// How many messages one pull asks for (default [`DEFAULT_BATCH`], at least
    /// `concurrency`, at most `max_ack_pending`).
    ///
    /// Larger batches keep handlers busy while the next pull is on its way. A
    /// pulled message that waits for a free handler is kept alive (`+WPI` at half
    /// the consumer's current `ack_wait`), so slow handlers are never redelivered
    /// while their messages queue. The service holds up to the consumer's
    /// `max_ack_pending` messages (server default 1,000); with an unlimited
    /// `max_ack_pending` (-1), set one, or messages past twice the batch may wait
    /// unread in the client, where nothing keeps them alive.
    #[must_use]
    pub fn batch(mut self, messages: usize) -> Self {
        self.batch = Some(messages);
        self
    }

    /// The pull batch size in effect.
    pub fn batch_size(&self) -> usize {
        let limit = self.concurrency_limit();
        let batch = self.batch.unwrap_or(DEFAULT_BATCH).max(limit);
        match self.max_ack_pending {
            Some(max) if max > 0 => batch.min(usize::try_from(max).unwrap_or(usize::MAX)),
            _ => batch,
        }
        .max(1)
    }

    /// Fire-and-forget or confirmed acks.
    #[must_use]
    pub fn ack(mut self, mode: AckMode) -> Self {
        self.ack = mode;
        self
    }

    /// Create or update the consumer at start (default), or only bind to an
    /// existing one (`false`), failing clearly when it is missing.
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Where messages go when they will not be retried (poison, permanent errors,
    /// the last delivery failing, the last delivery never settled): a stream
    /// must capture this subject. A message is termed only once its letter is
    /// stored; until then it is nak'ed with a delay. See [`dead_letter`](crate::dead_letter).
    ///
    /// Read letters from that stream; a core handler subscribed to the subject
    /// would answer the letter's publish and race the stream's acknowledgement.
    #[must_use]
    pub fn dead_letter(mut self, subject: impl Into<Cow<'static, str>>) -> Self {
        self.dead_letter = Some(subject.into());
        self
    }

    /// Publishes dead letters on core NATS instead of to a stream: nothing
    /// confirms them, so a letter that no subscriber receives is lost. For
    /// services whose dead letters are only watched, never kept.
    #[must_use]
    pub fn dead_letter_route(mut self, route: DeadLetterRoute) -> Self {
        self.dead_letter_route = route;
        self
    }

    /// Parent or link to the publisher's context.
    #[must_use]
    pub fn trace(mut self, mode: TraceMode) -> Self {
        self.trace = mode;
        self
    }

    /// Record settlements as spans (default) or events.
    #[must_use]
    pub fn settle_record(mut self, record: SettleRecord) -> Self {
        self.settle_record = record;
        self
    }

    /// The handler's name in errors and logs.
    #[must_use]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Records the values of these headers on each `process` span; as
    /// [`Subscription::capture_headers`](crate::Subscription::capture_headers).
    #[must_use]
    pub fn capture_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.capture.headers.extend(names.into_iter().map(Into::into));
        self
    }

    /// Records at most the first `max_bytes` of each payload on its `process`
    /// span; as [`Subscription::capture_body`](crate::Subscription::capture_body).
    #[must_use]
    pub fn capture_body(mut self, max_bytes: usize) -> Self {
        self.capture.body = Some(max_bytes);
        self
    }

    /// The stream.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The durable consumer name.
    pub fn durable_name(&self) -> &str {
        &self.durable
    }

    /// What spans are named after: the only filter, else the stream.
    pub fn pattern(&self) -> &str {
        match self.filters.as_slice() {
            [only] => only,
            _ => &self.stream,
        }
    }

    /// The in-flight limit in effect.
    pub fn concurrency_limit(&self) -> usize {
        let limit = self.concurrency.unwrap_or(DEFAULT_JETSTREAM_CONCURRENCY);
        match self.max_ack_pending {
            Some(max) if max > 0 => limit.min(usize::try_from(max).unwrap_or(usize::MAX)),
            _ => limit,
        }
        .max(1)
    }

    pub(crate) fn policy(&self) -> Policy {
        Policy {
            max_deliver: self.max_deliver,
            backoff: self.backoff.clone(),
            dead_letter: self.dead_letter.is_some(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        use nats_otel_rules::{
            Setting, Subject, Usage, validate_backoff_against_max_deliver,
            validate_concurrency_against_max_ack_pending, validate_name, validate_positive,
        };
        validate_name(&self.stream).map_err(|e| format!("stream `{}`: {e}", self.stream))?;
        validate_name(&self.durable).map_err(|e| format!("durable `{}`: {e}", self.durable))?;
        for filter in &self.filters {
            Subject::parse(filter, Usage::Subscribe).map_err(|e| format!("filter: {e}"))?;
        }
        if let Some(dead_letter) = &self.dead_letter {
            Subject::parse(dead_letter, Usage::Publish).map_err(|e| format!("dead_letter: {e}"))?;
        }
        for (setting, value) in [(Setting::Concurrency, self.concurrency), (Setting::Batch, self.batch)] {
            if let Some(value) = value {
                validate_positive(setting, value as u64).map_err(|e| e.to_string())?;
            }
        }
        if let Some(max_deliver) = self.max_deliver {
            validate_backoff_against_max_deliver(self.backoff.len(), max_deliver)
                .map_err(|e| e.to_string())?;
        }
        // Both given: the rule the macro applies. The default concurrency is
        // lowered to `max_ack_pending` instead (`concurrency_limit`).
        if let (Some(concurrency), Some(max_ack_pending)) = (self.concurrency, self.max_ack_pending) {
            validate_concurrency_against_max_ack_pending(concurrency, max_ack_pending)
                .map_err(|e| e.to_string())?;
        }
        self.capture.validate()
    }

    pub(crate) fn config(&self) -> pull::Config {
        let mut config = pull::Config {
            durable_name: Some(self.durable.to_string()),
            deliver_policy: match self.deliver {
                Deliver::All => DeliverPolicy::All,
                Deliver::New => DeliverPolicy::New,
                Deliver::Last => DeliverPolicy::Last,
                Deliver::LastPerSubject => DeliverPolicy::LastPerSubject,
            },
            max_deliver: self.max_deliver.unwrap_or(-1),
            backoff: self.backoff.clone(),
            ..Default::default()
        };
        if let Some(ack_wait) = self.ack_wait {
            config.ack_wait = ack_wait;
        }
        if let Some(max) = self.max_ack_pending {
            config.max_ack_pending = max;
        }
        match self.filters.as_slice() {
            [] => {}
            [only] => config.filter_subject = only.to_string(),
            many => config.filter_subjects = many.iter().map(|f| f.to_string()).collect(),
        }
        config
    }
}

/// The JetStream metadata of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamInfo {
    /// The stream.
    pub stream: Arc<str>,
    /// The consumer.
    pub consumer: Arc<str>,
    /// The message's sequence in the stream.
    pub stream_sequence: u64,
    /// The delivery's sequence in the consumer.
    pub consumer_sequence: u64,
    /// How many times the message has been delivered, this one included.
    pub delivered: i64,
    /// How many messages the consumer has yet to deliver.
    pub pending: u64,
    /// When the message was stored.
    pub published: SystemTime,
}

impl JetStreamInfo {
    /// Parses the delivery metadata; `names` are the consumer's own stream and
    /// consumer names, shared instead of allocated per message.
    fn from_message(message: &jetstream::Message, names: &(Arc<str>, Arc<str>)) -> Option<Self> {
        let info = message.info().ok()?;
        let shared = |parsed: &str, known: &Arc<str>| {
            if parsed == &**known { known.clone() } else { Arc::from(parsed) }
        };
        Some(Self {
            stream: shared(info.stream, &names.0),
            consumer: shared(info.consumer, &names.1),
            stream_sequence: info.stream_sequence,
            consumer_sequence: info.consumer_sequence,
            delivered: info.delivered,
            pending: info.pending,
            published: info.published.into(),
        })
    }
}

impl Extractor for JetStreamInfo {}

impl<S> FromMessage<S> for JetStreamInfo {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        incoming.jetstream().cloned().ok_or_else(|| {
            Rejection::new("not_jetstream", "`JetStreamInfo` needs a message from a JetStream consumer")
                .with_code(500)
        })
    }
}

/// Headers a dead-lettered message carries, besides the trace context.
pub use crate::dead_letter::headers as dead_letter_headers;

/// A consumer ready to serve: bound, and watched for deletion.
pub(crate) struct Prepared {
    consumer: PullConsumer,
    /// The server's `CONSUMER.DELETED` advisory for this consumer: a pull consumer
    /// whose consumer is deleted otherwise just stops receiving.
    deleted: Option<async_nats::Subscriber>,
    /// The server's `MAX_DELIVERIES` advisories for this consumer, when it has a
    /// dead-letter subject: deliveries that never came back (a crashed process,
    /// an `Acker` left unsettled) are dead-lettered from them.
    max_deliveries: Option<async_nats::Subscriber>,
}

/// Binds to (or creates) the consumer and watches for its deletion.
pub(crate) async fn prepare(
    client: &async_nats::Client,
    spec: &JetStreamConsumer,
    context: &str,
) -> Result<Prepared, ServeError> {
    let consumer = bind(client, spec, context).await?;
    let advisory = format!("$JS.EVENT.ADVISORY.CONSUMER.DELETED.{}.{}", spec.stream, spec.durable);
    let deleted = match client.subscribe(advisory).await {
        Ok(subscriber) => Some(subscriber),
        Err(e) => {
            tracing::warn!(target: spans::TARGET, error = %e, "{context}: cannot watch for consumer deletion");
            None
        }
    };
    let max_deliveries = match &spec.dead_letter {
        Some(_) => {
            // One queue group per consumer: with several instances, one letter.
            let advisory =
                format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}", spec.stream, spec.durable);
            let group = format!("nats-otel.dead-letters.{}.{}", spec.stream, spec.durable);
            let subscribed = client.queue_subscribe(advisory, group).await;
            Some(subscribed.map_err(|e| {
                ServeError::with_source(ServeErrorKind::Subscribe, e).context(context.to_owned())
            })?)
        }
        None => None,
    };
    Ok(Prepared { consumer, deleted, max_deliveries })
}

async fn bind(
    client: &async_nats::Client,
    spec: &JetStreamConsumer,
    context: &str,
) -> Result<PullConsumer, ServeError> {
    spec.validate().map_err(|reason| {
        ServeError::with_source(ServeErrorKind::InvalidSubject, reason).context(context.to_owned())
    })?;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(spec.stream.as_ref()).await.map_err(|e| {
        ServeError::with_source(ServeErrorKind::StreamNotFound, e).context(context.to_owned())
    })?;
    if spec.create {
        stream
            .create_consumer(spec.config())
            .await
            .map_err(|e| ServeError::with_source(ServeErrorKind::Consumer, e).context(context.to_owned()))
    } else {
        stream.get_consumer(spec.durable.as_ref()).await.map_err(|e| {
            ServeError::with_source(ServeErrorKind::ConsumerNotFound, e).context(context.to_owned())
        })
    }
}

/// Everything handling one of a consumer's messages needs: the JetStream
/// kind's [`Step`].
struct Shared<H, T, S> {
    handler: H,
    state: Arc<S>,
    spans: Arc<JetStreamSpans>,
    policy: Policy,
    ack: AckMode,
    /// The consumer's `ack_wait`, as the server holds it now.
    ack_wait: AckWait,
    dead_letters: Option<DeadLetters>,
    client: async_nats::Client,
    metrics: Arc<EndpointMetrics>,
    names: (Arc<str>, Arc<str>),
    /// Tokens of the service's subject prefix, skipped when reading captures.
    subject_offset: usize,
    args: std::marker::PhantomData<fn() -> T>,
}

/// Pulls, processes and settles until stopped.
pub(crate) async fn serve<H, T, S>(
    spec: JetStreamConsumer,
    handler: H,
    prepared: Prepared,
    run: crate::service::Run<S>,
    context: String,
) -> Result<(), ServeError>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    let Prepared { consumer, deleted, max_deliveries } = prepared;
    let (ack_wait, follow_ack_wait) =
        AckWait::follow(consumer.clone(), consumer.cached_info().config.ack_wait);
    let peer = Peer::of(&run.client);
    let metrics = Arc::new(EndpointMetrics::new(
        run.instruments.clone(),
        peer.clone(),
        EndpointIdentity {
            destination: spec.pattern(),
            group: Some(spec.durable_name()),
            subscription: Some(spec.durable_name()),
        },
        true,
    ));
    let settings = PullSettings {
        batch: spec.batch_size(),
        limit: spec.concurrency_limit(),
        ack_wait: ack_wait.clone(),
        policy: spec.policy(),
    };
    let source = Pulling::start(
        consumer,
        settings,
        follow_ack_wait,
        (deleted, max_deliveries),
        run.client.clone(),
        context,
    )
    .await?;
    let shared = Shared {
        handler,
        state: run.state,
        spans: Arc::new(JetStreamSpans::new(&spec, peer)),
        policy: spec.policy(),
        ack: spec.ack,
        ack_wait,
        dead_letters: spec.dead_letter.clone().map(|subject| DeadLetters {
            subject,
            route: spec.dead_letter_route,
            jetstream: jetstream::new(run.client.clone()),
        }),
        client: run.client.clone(),
        metrics,
        names: (Arc::from(spec.stream_name()), Arc::from(spec.durable_name())),
        subject_offset: spec.prefix_tokens,
        args: std::marker::PhantomData,
    };
    crate::serving::serve(&shared, source, run.stopped).await
}

impl<H, T, S> Step for Shared<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    type Work = Work;

    fn handle(&self, work: Work) -> impl Future<Output = ()> + Send + '_ {
        match work {
            Work::Delivery(message) => Either::Left(self.process(message)),
            // Boxed: rare, and kept out of every message's future.
            Work::Exhausted(advisory) => Either::Right(Box::pin(self.dead_letter_exhausted(advisory))),
        }
    }
}

impl<H, T, S> Shared<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    /// Opens the span at once and gives the rest as a future that holds only
    /// what it needs: every in-flight message is one such future, moved into the
    /// set of handlers at work, so its size is copied per message.
    fn process(&self, message: jetstream::Message) -> impl Future<Output = ()> + Send + '_ {
        let started = std::time::Instant::now();
        let info = JetStreamInfo::from_message(&message, &self.names);
        self.metrics.received(message.payload.len());
        if let Some(info) = &info {
            self.metrics.delivery(info.delivered, info.pending);
        }
        let (message, acker) = message.split();
        let cx = crate::guard::span_or_none(|| {
            self.spans.start(&message, info.as_ref(), H::TRACE_CONTEXT_IN_BODY)
        });
        let settler = Arc::new(Settler {
            acker,
            mode: self.ack,
            spans: self.spans.clone(),
            process: cx.clone(),
            settled: std::sync::atomic::AtomicBool::new(false),
            metrics: self.metrics.clone(),
        });
        let mut incoming = Incoming::new(message, cx);
        incoming.subject_offset = self.subject_offset;
        incoming.jetstream = info;
        incoming.settler = Some(settler.clone());

        crate::guard::last_resort(async move {
            let delivered = incoming.jetstream.as_ref().map_or(1, |i| i.delivered);
            let pace = Pace { policy: &self.policy, ack_wait: &self.ack_wait, delivered };
            let outcome =
                with_progress(crate::service::invoke(&self.handler, &incoming, &self.state), &*settler, pace)
                    .await;
            let error_type = match &outcome {
                crate::Outcome::Failure(failure) => {
                    spans::record_failure(&incoming.cx, self.spans.name(), failure);
                    Some(failure.error_type())
                }
                crate::Outcome::Success(_) => None,
            };
            self.metrics.processed(started.elapsed(), error_type);
            if settler.is_settled() {
                return;
            }
            if H::SETTLES_ITSELF && matches!(outcome, crate::Outcome::Success(_)) {
                spans::warn(
                    &incoming.cx,
                    self.spans.name(),
                    "the handler took an `Acker` but did not settle; the message will be redelivered after ack_wait",
                    None,
                );
                return;
            }
            let mut settlement = self.policy.settle(&outcome, delivered);
            // Boxed: a rare path, kept out of every message's future.
            if settlement == Settlement::DeadLetter && !Box::pin(self.dead_letter(&incoming, &outcome)).await
            {
                settlement = Settlement::Nak(Some(dead_letter::retry_delay(
                    self.policy.backoff_for(delivered),
                    delivered,
                )));
            }
            let _ = settler.settle(settlement).await;
        })
    }

    /// Writes the letter for a failed delivery; whether it is stored (then the
    /// message may be termed). A failure is recorded on the process span and in
    /// the `dead_letters` metric.
    async fn dead_letter(&self, incoming: &Incoming, outcome: &crate::Outcome) -> bool {
        let Some(dead_letters) = &self.dead_letters else { return true };
        let (message, error_type) = match outcome {
            crate::Outcome::Failure(failure) => (failure.message(), failure.error_type()),
            crate::Outcome::Success(_) => ("", ""),
        };
        let info = incoming.jetstream();
        let original = Original {
            subject: incoming.subject(),
            headers: incoming.headers(),
            unreadable_headers: None,
            payload: incoming.payload(),
            stream: info.map_or(self.names.0.as_ref(), |i| &i.stream),
            consumer: info.map_or(self.names.1.as_ref(), |i| &i.consumer),
            stream_sequence: info.map_or(0, |i| i.stream_sequence),
            delivered: info.map_or(1, |i| i.delivered),
        };
        // The letter continues the trace of the message it carries.
        let letter = Letter::new(&original, Reason { message, error_type }, Some(&incoming.cx));
        match dead_letters.send(&letter).await {
            Ok(stored) => {
                self.metrics.dead_letter(None);
                spans::dead_lettered(&incoming.cx, &dead_letters.subject, stored);
                true
            }
            Err(failed) => {
                self.metrics.dead_letter(Some(failed.error_type));
                spans::warn(
                    &incoming.cx,
                    self.spans.name(),
                    "the dead letter was not stored; the message is nak'ed and will be delivered again",
                    Some(&failed),
                );
                false
            }
        }
    }

    /// Dead-letters a message whose last delivery never came back, from the
    /// server's `MAX_DELIVERIES` advisory: fetched by its stream sequence, with its
    /// own trace context. Retried with a growing delay while the letter fails, as
    /// the consumer will not deliver it again.
    async fn dead_letter_exhausted(&self, advisory: bytes::Bytes) {
        let Some(dead_letters) = &self.dead_letters else { return };
        #[derive(serde::Deserialize)]
        struct MaxDeliveries {
            stream_seq: u64,
            deliveries: i64,
        }
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&advisory) else {
            tracing::warn!(target: spans::TARGET, "{}: unreadable MAX_DELIVERIES advisory", self.spans.name());
            return;
        };
        let stored = match dead_letter::fetch(&self.client, &self.names.0, advisory.stream_seq).await {
            Ok(stored) => stored,
            Err(e) => {
                self.metrics.dead_letter(Some("dead_letter_source_missing"));
                tracing::warn!(target: spans::TARGET, error = %e, sequence = advisory.stream_seq,
                    "{}: a message that exhausted its deliveries cannot be read back for its dead letter",
                    self.spans.name());
                return;
            }
        };
        let original = Original {
            subject: &stored.subject,
            headers: stored.headers.as_ref(),
            unreadable_headers: stored.unreadable_headers.as_deref(),
            payload: &stored.payload,
            stream: &self.names.0,
            consumer: &self.names.1,
            stream_sequence: advisory.stream_seq,
            delivered: advisory.deliveries,
        };
        let reason = Reason {
            message: "the delivery limit was reached without a settlement (the handler outlived ack_wait, or its process ended)",
            error_type: "max_deliveries",
        };
        let letter = Letter::new(&original, reason, None);
        for attempt in 1..=EXHAUSTED_ATTEMPTS {
            match dead_letters.send(&letter).await {
                Ok(_) => {
                    self.metrics.dead_letter(None);
                    return;
                }
                Err(failed) => {
                    self.metrics.dead_letter(Some(failed.error_type));
                    tracing::warn!(target: spans::TARGET, error = %failed, sequence = advisory.stream_seq, attempt,
                        "{}: the dead letter of a message that exhausted its deliveries was not stored",
                        self.spans.name());
                    if attempt < EXHAUSTED_ATTEMPTS {
                        tokio::time::sleep(dead_letter::retry_delay(None, i64::from(attempt))).await;
                    }
                }
            }
        }
    }
}

/// How often the letter of an exhausted delivery is tried (about two minutes in all).
const EXHAUSTED_ATTEMPTS: u32 = 7;

/// Settles one message: sends the ack, nak or term, records it on the process
/// span and in a settle span. Shared by automatic settlement and [`Acker`].
pub(crate) struct Settler {
    acker: async_nats::jetstream::message::Acker,
    mode: AckMode,
    spans: Arc<JetStreamSpans>,
    /// The process span's context: the span ends when its last holder (this, the
    /// message, an `Acker` the handler kept) lets go.
    process: opentelemetry::Context,
    settled: std::sync::atomic::AtomicBool,
    metrics: Arc<EndpointMetrics>,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Settler {
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn settle(&self, settlement: Settlement) -> Result<(), async_nats::Error> {
        let kind = match settlement {
            Settlement::Ack => AckKind::Ack,
            Settlement::Nak(delay) => AckKind::Nak(delay),
            Settlement::Term | Settlement::DeadLetter => AckKind::Term,
        };
        self.settled.store(true, std::sync::atomic::Ordering::Release);
        // Nothing runs inside the settle span: it is never made current.
        let settle_span = self.spans.settle(&self.process, settlement);
        let started = std::time::Instant::now();
        let sent = match self.mode {
            AckMode::Fire => self.acker.ack_with(kind).await,
            AckMode::Confirmed => self.acker.double_ack_with(kind).await,
        };
        if let Err(e) = &sent {
            let failed_on = settle_span.as_ref().unwrap_or(&self.process);
            let message = format!("failed to {}: {e}", settlement.as_str());
            spans::record_error(failed_on, self.spans.name(), "settle", &message);
        }
        if let Some(settle_span) = settle_span {
            use opentelemetry::trace::TraceContextExt;
            settle_span.span().end();
        }
        self.metrics.settled(settlement, started.elapsed(), sent.as_ref().err().map(|_| "settle"));
        sent
    }

    pub(crate) async fn progress(&self) {
        let _ = self.acker.ack_with(AckKind::Progress).await;
    }
}

impl crate::keep_alive::Beating for Settler {
    fn is_settled(&self) -> bool {
        Settler::is_settled(self)
    }

    fn in_progress(&self) -> impl Future<Output = ()> + Send + '_ {
        self.progress()
    }
}

/// Manual settlement: a handler that takes an `Acker` settles its message itself,
/// and the service does not (unless the handler fails or panics before settling,
/// when the settlement table applies).
///
/// ```
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::Acker;
///
/// #[jetstream_consumer(stream = "ORDERS", durable = "manual")]
/// async fn handle(body: Bytes, acker: Acker) -> Result<(), async_nats::Error> {
///     if body.is_empty() {
///         acker.term().await?;
///     } else {
///         acker.ack().await?;
///     }
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct Acker(Arc<Settler>);

impl Acker {
    /// Acknowledges: processed.
    pub async fn ack(&self) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Ack).await
    }

    /// Asks for redelivery, after `delay` if given.
    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Nak(delay)).await
    }

    /// Never redeliver.
    pub async fn term(&self) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Term).await
    }

    /// Still working: resets the server's ack timer.
    pub async fn in_progress(&self) {
        self.0.progress().await;
    }
}

impl Extractor for Acker {}

impl<S> FromMessage<S> for Acker {
    const SETTLES_ITSELF: bool = true;

    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        incoming.settler.clone().map(Acker).ok_or_else(|| {
            Rejection::new("not_jetstream", "`Acker` needs a message from a JetStream consumer")
                .with_code(500)
        })
    }
}
