//! What a JetStream consumer endpoint is: its configuration, checked with the
//! rule book before the consumer is bound.

use super::stream::NatsStream;
use std::borrow::Cow;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};

use super::Rejected;
use super::capture::CaptureConfig;
use super::prefix::SubjectPrefix;
use super::subscription::TraceMode;

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
/// without the macro, pass one to [`NatsService::consume`](crate::NatsService::consume).
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
    pub(crate) capture: CaptureConfig,
    /// An ordered consumer ([`JetStreamConsumer::ordered`]): `durable` is then
    /// the prefix of its ephemeral consumers' names.
    pub(crate) ordered: bool,
    /// The stream's configuration, when it is declared in code: start-up
    /// creates or updates it.
    pub(crate) declared_stream: Option<Box<async_nats::jetstream::stream::Config>>,
    /// Set for a batch handler: how its batches are made.
    pub(crate) batches: Option<Batches>,
}

/// How a batch handler's batches are made: up to `size` messages, or what
/// arrived within `wait` of the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batches {
    pub(crate) size: usize,
    pub(crate) wait: Duration,
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
            capture: CaptureConfig::default(),
            ordered: false,
            declared_stream: None,
            batches: None,
        }
    }

    /// The consumer of a stream declared in code (`#[derive(NatsStream)]`):
    /// start-up creates or updates the stream before the consumer binds, and
    /// fails if a filter lies outside its subjects (the macros check that at
    /// compile time).
    ///
    /// ```
    /// use nats_otel_runtime::prelude::*;
    /// use nats_otel_runtime::JetStreamConsumer;
    ///
    /// #[derive(NatsStream)]
    /// #[nats_stream(name = "ORDERS", subjects = ["orders.>"])]
    /// struct Orders;
    ///
    /// let billing = JetStreamConsumer::of::<Orders>("billing").filter("orders.*.placed");
    /// assert_eq!(billing.stream_name(), "ORDERS");
    /// ```
    pub fn of<T: NatsStream>(durable: impl Into<Cow<'static, str>>) -> Self {
        Self::new(T::NAME, durable).declared_stream(T::config())
    }

    /// Start-up creates or updates the consumer's stream with `config`, as for a
    /// stream declared with [`NatsService::stream`](crate::NatsService::stream).
    #[must_use]
    pub fn declared_stream(mut self, config: async_nats::jetstream::stream::Config) -> Self {
        self.declared_stream = Some(Box::new(config));
        self
    }

    /// An ordered consumer on `stream`, for replay: every message of the stream
    /// (or of its filters, from where [`deliver`](Self::deliver) says), one at a
    /// time and in stream order, to this service instance alone.
    ///
    /// It has no durable name, no acks and no redelivery: each instance makes an
    /// ephemeral consumer of its own (named `ordered_{id}`), and when that
    /// consumer is lost (deleted, a missed heartbeat, a sequence gap) it is
    /// recreated from the last stream sequence seen, so the handler sees each
    /// message once, without gaps. A recreation is recorded as a
    /// `jetstream.create_consumer` span (`messaging.nats.jetstream.setup` =
    /// `recreated`) with the sequence it resumed at. A handler failure is
    /// recorded on its span; the message is not delivered again.
    ///
    /// ```
    /// use nats_otel_runtime::JetStreamConsumer;
    /// let replay = JetStreamConsumer::ordered("ORDERS").filter("orders.>");
    /// assert!(replay.is_ordered());
    /// ```
    pub fn ordered(stream: impl Into<Cow<'static, str>>) -> Self {
        let mut consumer = Self::new(stream, format!("ordered_{}", nuid::next()));
        consumer.ordered = true;
        consumer.concurrency = Some(1);
        consumer
    }

    /// A watch of the key-value bucket `bucket`, on the keys `key` matches
    /// (`tenants.>`, `flags.*`, `>`): an [`ordered`](Self::ordered) consumer on
    /// the bucket's stream, whose handler reads each change as a
    /// [`KvEntry`](crate::KvEntry). `history` says where it starts.
    ///
    /// ```
    /// use nats_otel_runtime::JetStreamConsumer;
    /// use nats_otel_runtime::jetstream::KvHistory;
    /// let watch = JetStreamConsumer::kv_watch("config", "tenants.>", KvHistory::Latest);
    /// assert_eq!(watch.stream_name(), "KV_config");
    /// assert_eq!(watch.pattern(), "$KV.config.tenants.>");
    /// ```
    pub fn kv_watch(bucket: &str, key: &str, history: KvHistory) -> Self {
        let mut watch = Self::ordered(format!("KV_{bucket}")).filter(format!("$KV.{bucket}.{key}"));
        watch.deliver = match history {
            KvHistory::Latest => Deliver::LastPerSubject,
            KvHistory::All => Deliver::All,
            KvHistory::UpdatesOnly => Deliver::New,
        };
        watch
    }

    /// Whether this is an [`ordered`](Self::ordered) consumer.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Puts the service's subject prefix in front of the filters, the template and
    /// the dead-letter subject. The stream and consumer names stay as they are.
    pub(crate) fn apply_prefix(&mut self, prefix: &SubjectPrefix) {
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

    /// Hands the handler batches of up to `size` messages, or of what arrived
    /// within `wait` of a batch's first message, for a handler that takes
    /// [`Batch`](crate::Batch). `concurrency` then counts batches (default: two
    /// when they fit in `max_ack_pending`, else one), and `size` × `concurrency`
    /// must fit in `max_ack_pending` (the server's default is 1,000). `wait`
    /// must be shorter than `ack_wait`: messages collected for a batch are not
    /// kept alive until the batch starts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nats_otel_runtime::JetStreamConsumer;
    ///
    /// let bulk = JetStreamConsumer::new("ORDERS", "bulk").batches(100, Duration::from_millis(50));
    /// assert_eq!(bulk.concurrency_limit(), 2);
    /// ```
    #[must_use]
    pub fn batches(mut self, size: usize, wait: Duration) -> Self {
        self.batches = Some(Batches { size, wait });
        self
    }

    /// Whether the handler takes batches ([`batches`](Self::batches)).
    pub fn is_batched(&self) -> bool {
        self.batches.is_some()
    }

    /// Messages held by handlers at once: `concurrency`, times the batch size
    /// for a batch handler.
    pub(crate) fn messages_in_flight(&self) -> usize {
        let batch = self.batches.map_or(1, |b| b.size.max(1));
        self.concurrency_limit().saturating_mul(batch)
    }

    /// The pull batch size in effect: for a batch handler, at least a batch.
    pub fn batch_size(&self) -> usize {
        let limit = self.messages_in_flight();
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
        if let Some(batches) = self.batches {
            return self
                .concurrency
                .unwrap_or_else(|| batches.default_concurrency(self.max_ack_pending))
                .max(1);
        }
        let limit = self.concurrency.unwrap_or(DEFAULT_JETSTREAM_CONCURRENCY);
        match self.max_ack_pending {
            Some(max) if max > 0 => limit.min(usize::try_from(max).unwrap_or(usize::MAX)),
            _ => limit,
        }
        .max(1)
    }

    /// Checks the names and subjects against the NATS grammar, and the options
    /// against the rule book and each other.
    pub(crate) fn validate(&self) -> Result<(), Rejected> {
        use nats_otel_rules::{Subject, Usage, validate_name};
        validate_name(&self.stream)
            .map_err(|e| Rejected::subject(format!("stream `{}`: {e}", self.stream)))?;
        validate_name(&self.durable)
            .map_err(|e| Rejected::subject(format!("durable `{}`: {e}", self.durable)))?;
        for filter in &self.filters {
            Subject::parse(filter, Usage::Subscribe)
                .map_err(|e| Rejected::subject(format!("filter: {e}")))?;
        }
        if let Some(dead_letter) = &self.dead_letter {
            Subject::parse(dead_letter, Usage::Publish)
                .map_err(|e| Rejected::subject(format!("dead_letter: {e}")))?;
        }
        self.validate_options().map_err(Rejected::options)
    }

    fn validate_options(&self) -> Result<(), String> {
        use nats_otel_rules::{
            Setting, validate_backoff_against_max_deliver, validate_concurrency_against_max_ack_pending,
            validate_positive,
        };
        if self.ordered {
            self.validate_ordered()?;
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
        if let Some(batches) = self.batches {
            batches.validate(self)?;
        }
        self.capture.validate()
    }

    /// An ordered consumer has no acks and no redelivery: the options about
    /// them, and more than one handler at once, do not apply.
    fn validate_ordered(&self) -> Result<(), String> {
        let given = [
            ("ack_wait", self.ack_wait.is_some()),
            ("max_deliver", self.max_deliver.is_some()),
            ("backoff", !self.backoff.is_empty()),
            ("max_ack_pending", self.max_ack_pending.is_some()),
            ("ack", self.ack != AckMode::Fire),
            ("create", !self.create),
            ("dead_letter", self.dead_letter.is_some()),
            ("concurrency", self.concurrency != Some(1)),
            ("batch_size", self.batches.is_some()),
        ];
        match given.iter().find(|(_, given)| *given) {
            Some((option, _)) => Err(format!(
                "`{option}` does not apply to an ordered consumer (no acks, no redelivery, one message at a time)"
            )),
            None => Ok(()),
        }
    }

    /// The configuration of an ordered consumer named `name`.
    pub(crate) fn ordered_config(&self, name: String) -> pull::OrderedConfig {
        let mut config = pull::OrderedConfig {
            name: Some(name),
            deliver_policy: self.deliver_policy(),
            ..Default::default()
        };
        match self.filters.as_slice() {
            [] => {}
            [only] => config.filter_subject = only.to_string(),
            many => config.filter_subjects = many.iter().map(|f| f.to_string()).collect(),
        }
        config
    }

    fn deliver_policy(&self) -> DeliverPolicy {
        match self.deliver {
            Deliver::All => DeliverPolicy::All,
            Deliver::New => DeliverPolicy::New,
            Deliver::Last => DeliverPolicy::Last,
            Deliver::LastPerSubject => DeliverPolicy::LastPerSubject,
        }
    }

    pub(crate) fn config(&self) -> pull::Config {
        let mut config = pull::Config {
            durable_name: Some(self.durable.to_string()),
            deliver_policy: self.deliver_policy(),
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

/// Where a key-value watch ([`JetStreamConsumer::kv_watch`], `#[kv_watch]`) starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KvHistory {
    /// Each key's current entry, then every change (default).
    #[default]
    Latest,
    /// Every revision the bucket keeps, then every change.
    All,
    /// Only changes made after the watch starts.
    UpdatesOnly,
}

/// How dead letters are published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeadLetterRoute {
    /// To a stream that captures the dead-letter subject, confirmed by its PubAck
    /// (default). Without such a stream the letter fails and the message is
    /// nak'ed with a delay, never termed.
    #[default]
    Stream,
    /// A core NATS publish, for whoever subscribes at that moment: nothing
    /// confirms it, so a letter nobody receives is lost. Choose it only where a
    /// subscriber is always there and losing letters is acceptable.
    Core,
}

impl Batches {
    /// Two batches at once (one handled while the next fills) when they fit in
    /// `max_ack_pending`, else one.
    fn default_concurrency(self, max_ack_pending: Option<i64>) -> usize {
        let fits =
            |n| nats_otel_rules::validate_batches_against_max_ack_pending(self.size, n, max_ack_pending);
        if fits(2).is_ok() { 2 } else { 1 }
    }

    /// The rules of the book on a batch handler's options, as the macro applies them.
    fn validate(self, consumer: &JetStreamConsumer) -> Result<(), String> {
        use nats_otel_rules::{
            Setting, validate_batch_wait, validate_batches_against_max_ack_pending, validate_positive,
        };
        validate_positive(Setting::BatchSize, self.size as u64).map_err(|e| e.to_string())?;
        validate_batches_against_max_ack_pending(
            self.size,
            consumer.concurrency_limit(),
            consumer.max_ack_pending,
        )
        .map_err(|e| format!("{e}: {}", e.help()))?;
        validate_batch_wait(self.wait, consumer.ack_wait, &consumer.backoff)
            .map_err(|e| format!("{e}: {}", e.help()))
    }
}
