//! Traced set-up: creating or updating the streams a service declares and the
//! consumers it manages, each in a `jetstream.create_stream` /
//! `jetstream.create_consumer` CLIENT span that summarises the configuration
//! and says whether it was created, updated or already so; a consumer bound by
//! name is looked up in a `jetstream.get_consumer` span.

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, consumer, stream};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Array, KeyValue, StringValue, Value};

use crate::endpoint::JetStreamConsumer;
use crate::error::{ServeError, ServeErrorKind};
use crate::otel::TARGET;
use crate::otel::semconv;
use crate::otel::tracer::Tracer;

/// What set-up found and did, as `messaging.nats.jetstream.setup` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It did not exist: created.
    Created,
    /// It existed with another configuration: updated.
    Updated,
    /// It existed as declared: nothing changed.
    Unchanged,
    /// Bound by name, not managed by the service.
    Bound,
    /// An ordered consumer made again after it was lost.
    Recreated,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Bound => "bound",
            Self::Recreated => "recreated",
        }
    }

    fn of<T: PartialEq>(before: Option<&T>, after: &T) -> Self {
        match before {
            None => Self::Created,
            Some(before) if before == after => Self::Unchanged,
            Some(_) => Self::Updated,
        }
    }
}

/// Attribute names of set-up spans.
mod attribute {
    pub(super) const STREAM: &str = "messaging.nats.jetstream.stream";
    pub(super) const CONSUMER: &str = "messaging.nats.jetstream.consumer";
    pub(super) const SETUP: &str = "messaging.nats.jetstream.setup";
    pub(super) const SUBJECTS: &str = "messaging.nats.jetstream.stream.subjects";
    pub(super) const STORAGE: &str = "messaging.nats.jetstream.stream.storage";
    pub(super) const REPLICAS: &str = "messaging.nats.jetstream.stream.replicas";
    pub(super) const RETENTION: &str = "messaging.nats.jetstream.stream.retention";
    pub(super) const FILTERS: &str = "messaging.nats.jetstream.consumer.filter_subjects";
    pub(super) const DELIVER: &str = "messaging.nats.jetstream.consumer.deliver_policy";
    pub(super) const ACK_WAIT_MS: &str = "messaging.nats.jetstream.consumer.ack_wait_ms";
    pub(super) const MAX_DELIVER: &str = "messaging.nats.jetstream.consumer.max_deliver";
    pub(super) const MAX_ACK_PENDING: &str = "messaging.nats.jetstream.consumer.max_ack_pending";
    pub(super) const ORDERED: &str = "messaging.nats.jetstream.consumer.ordered";
    pub(super) const PREVIOUS: &str = "messaging.nats.jetstream.consumer.previous";
    pub(super) const RESUMED_AFTER: &str = "messaging.nats.jetstream.consumer.resumed_after_sequence";
}

fn strings(values: &[String]) -> Value {
    Value::Array(Array::String(values.iter().map(|s| StringValue::from(s.clone())).collect()))
}

/// Runs `work` in a set-up span named `name`; `work` gives the result and the
/// attributes that describe it.
async fn traced<T>(
    name: &'static str,
    mut attributes: Vec<KeyValue>,
    work: impl Future<Output = Result<(T, Outcome, Vec<KeyValue>), ServeError>>,
) -> Result<T, ServeError> {
    let tracer = Tracer::resolve();
    attributes.push(KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS));
    let builder = opentelemetry::trace::SpanBuilder::from_name(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attributes);
    let cx = tracer.start(builder, &opentelemetry::Context::current());
    let span = cx.span();
    let result = opentelemetry::trace::FutureExt::with_context(work, cx.clone()).await;
    let result = match result {
        Ok((value, outcome, more)) => {
            span.set_attribute(KeyValue::new(attribute::SETUP, outcome.as_str()));
            span.set_attributes(more);
            Ok(value)
        }
        Err(e) => {
            span.set_status(Status::error(format!("{e:#}")));
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, e.kind().error_type()));
            Err(e)
        }
    };
    span.end();
    result
}

/// Creates the declared stream, or updates it to the declared configuration.
pub(crate) async fn ensure_stream(
    client: &async_nats::Client,
    config: &stream::Config,
) -> Result<(), ServeError> {
    let js = jetstream::new(client.clone());
    let context = || format!("stream `{}`", config.name);
    let attributes = vec![
        KeyValue::new(attribute::STREAM, config.name.clone()),
        KeyValue::new(attribute::SUBJECTS, strings(&config.subjects)),
        KeyValue::new(attribute::STORAGE, format!("{:?}", config.storage).to_lowercase()),
        KeyValue::new(attribute::REPLICAS, config.num_replicas as i64),
        KeyValue::new(attribute::RETENTION, format!("{:?}", config.retention).to_lowercase()),
    ];
    traced("jetstream.create_stream", attributes, async {
        let before = match js.get_stream(&config.name).await {
            Ok(stream) => Some(stream.cached_info().config.clone()),
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                None
            }
            Err(e) => return Err(ServeError::with_source(ServeErrorKind::Stream, e).context(context())),
        };
        let info = match before {
            None => js
                .create_stream(config.clone())
                .await
                .map(|stream| stream.cached_info().clone())
                .map_err(|e| ServeError::with_source(ServeErrorKind::Stream, e).context(context()))?,
            Some(_) => js
                .update_stream(config.clone())
                .await
                .map_err(|e| ServeError::with_source(ServeErrorKind::Stream, e).context(context()))?,
        };
        let outcome = Outcome::of(before.as_ref(), &info.config);
        tracing::info!(target: TARGET, "stream `{}` {}", config.name, outcome.as_str());
        Ok(((), outcome, Vec::new()))
    })
    .await
}

/// Creates or updates the consumer `spec` manages, or binds to it by name.
pub(crate) async fn consumer(
    client: &async_nats::Client,
    spec: &JetStreamConsumer,
    context: &str,
) -> Result<PullConsumer, ServeError> {
    let (stream, identity) = stream_of(client, spec, context).await?;
    if !spec.create {
        return traced("jetstream.get_consumer", identity, async {
            let consumer: PullConsumer = stream.get_consumer(spec.durable.as_ref()).await.map_err(|e| {
                ServeError::with_source(ServeErrorKind::ConsumerNotFound, e).context(context.to_owned())
            })?;
            let summary = summary(&consumer.cached_info().config);
            Ok((consumer, Outcome::Bound, summary))
        })
        .await;
    }
    let config = spec.config();
    traced("jetstream.create_consumer", identity, async {
        let before = stream.consumer_info(spec.durable.as_ref()).await.ok().map(|info| info.config);
        let consumer: PullConsumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| ServeError::with_source(ServeErrorKind::Consumer, e).context(context.to_owned()))?;
        let after = &consumer.cached_info().config;
        let outcome = Outcome::of(before.as_ref(), after);
        let summary = summary(after);
        Ok((consumer, outcome, summary))
    })
    .await
}

/// The stream `spec` consumes, and the attributes that name the consumer.
async fn stream_of(
    client: &async_nats::Client,
    spec: &JetStreamConsumer,
    context: &str,
) -> Result<(stream::Stream, Vec<KeyValue>), ServeError> {
    let stream = jetstream::new(client.clone()).get_stream(spec.stream.as_ref()).await.map_err(|e| {
        ServeError::with_source(ServeErrorKind::StreamNotFound, e).context(context.to_owned())
    })?;
    let identity = vec![
        KeyValue::new(attribute::STREAM, spec.stream.to_string()),
        KeyValue::new(attribute::CONSUMER, spec.durable.to_string()),
    ];
    Ok((stream, identity))
}

/// The consumer's configuration as the server holds it, in short.
fn summary(config: &consumer::Config) -> Vec<KeyValue> {
    let mut filters = config.filter_subjects.clone();
    if !config.filter_subject.is_empty() {
        filters.push(config.filter_subject.clone());
    }
    vec![
        KeyValue::new(attribute::FILTERS, strings(&filters)),
        KeyValue::new(attribute::DELIVER, format!("{:?}", config.deliver_policy).to_lowercase()),
        KeyValue::new(attribute::ACK_WAIT_MS, i64::try_from(config.ack_wait.as_millis()).unwrap_or(i64::MAX)),
        KeyValue::new(attribute::MAX_DELIVER, config.max_deliver),
        KeyValue::new(attribute::MAX_ACK_PENDING, config.max_ack_pending),
    ]
}

/// Makes an instance's ordered consumer and starts its messages.
pub(crate) async fn ordered_consumer(
    client: &async_nats::Client,
    spec: &JetStreamConsumer,
    context: &str,
) -> Result<consumer::pull::Ordered, ServeError> {
    let (stream, mut identity) = stream_of(client, spec, context).await?;
    identity.push(KeyValue::new(attribute::ORDERED, true));
    let config = spec.ordered_config(spec.durable.to_string());
    traced("jetstream.create_consumer", identity, async {
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| ServeError::with_source(ServeErrorKind::Consumer, e).context(context.to_owned()))?;
        let summary = summary(&consumer.cached_info().config);
        let messages = consumer
            .messages()
            .await
            .map_err(|e| ServeError::with_source(ServeErrorKind::Consumer, e).context(context.to_owned()))?;
        Ok((messages, Outcome::Created, summary))
    })
    .await
}

/// Records that async-nats recreated an ordered consumer (it was deleted, a
/// heartbeat was missed, or a sequence gap was seen): seen when the first
/// message of the new consumer arrives, which continues after `last`.
pub(crate) fn record_recreated(stream: &str, previous: &str, consumer: &str, last: u64) {
    tracing::info!(target: TARGET, "ordered consumer `{previous}` on stream `{stream}` recreated as `{consumer}`, resuming after sequence {last}");
    let tracer = Tracer::resolve();
    let attributes = vec![
        KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS),
        KeyValue::new(attribute::STREAM, stream.to_owned()),
        KeyValue::new(attribute::CONSUMER, consumer.to_owned()),
        KeyValue::new(attribute::ORDERED, true),
        KeyValue::new(attribute::PREVIOUS, previous.to_owned()),
        KeyValue::new(attribute::RESUMED_AFTER, i64::try_from(last).unwrap_or(i64::MAX)),
        KeyValue::new(attribute::SETUP, Outcome::Recreated.as_str()),
    ];
    let builder = opentelemetry::trace::SpanBuilder::from_name("jetstream.create_consumer")
        .with_kind(SpanKind::Client)
        .with_attributes(attributes);
    tracer.start(builder, &opentelemetry::Context::new()).span().end();
}

/// Runs a service's set-up in a `start {service}` INTERNAL span, so its
/// streams' and consumers' spans make one trace.
pub(crate) async fn in_start_span<T>(
    service: &str,
    work: impl Future<Output = Result<T, ServeError>>,
) -> Result<T, ServeError> {
    use opentelemetry::trace::FutureExt as _;
    let tracer = Tracer::resolve();
    let builder = opentelemetry::trace::SpanBuilder::from_name(format!("start {service}"))
        .with_kind(SpanKind::Internal)
        .with_attributes([KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS)]);
    let cx = tracer.start(builder, &opentelemetry::Context::current());
    let result = work.with_context(cx.clone()).await;
    if let Err(e) = &result {
        cx.span().set_status(Status::error(format!("{e:#}")));
        cx.span().set_attribute(KeyValue::new(semconv::ERROR_TYPE, e.kind().error_type()));
    }
    cx.span().end();
    result
}
