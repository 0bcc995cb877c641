//! A JetStream consumer as an endpoint: bound at start, then pulled, processed
//! and settled from its handler's result until stopped.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_nats::Client;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self};
use futures_util::future::Either;

use super::batch::PerBatch;
use super::batching::Batching;
use super::dead_letter::DeadLetters;
use super::keep_alive::{AckWait, Pace, with_progress};
use super::pulling::{PullSettings, Pulling, Work};
use super::settle::Policy;
use super::settler::Settler;
use super::shared::{Shared, metrics};
use crate::endpoint::discovery::{EndpointInfo, endpoint_name};
use crate::endpoint::prefix::SubjectPrefix;
use crate::endpoint::{JetStreamConsumer, Rejected};
use crate::error::{ServeError, ServeErrorKind};
use crate::handler::{Handler, Incoming, JetStreamInfo, Outcome};
use crate::otel::TARGET;
use crate::otel::peer::Peer;
use crate::otel::spans::{self, Delivery, ProcessSpans, SettleSpans};
use crate::serving::invoke::{invoke, last_resort, telemetry_or_default};
use crate::serving::{BoxFuture, Ready, Run, Serve, Step};

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
            tracing::warn!(target: TARGET, error = %e, "{context}: cannot watch for consumer deletion");
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
    spec.validate().map_err(|rejected| rejected.into_error(context.to_owned()))?;
    super::setup::consumer(client, spec, context).await
}

/// Pulls, processes and settles until stopped.
pub(crate) async fn serve<H, T, S>(
    spec: JetStreamConsumer,
    handler: H,
    prepared: Prepared,
    run: Run<S>,
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
    let metrics = metrics(&spec, &run, &peer);
    let settings = PullSettings {
        batch: spec.batch_size(),
        limit: spec.messages_in_flight(),
        ack_wait: ack_wait.clone(),
        policy: Policy::of(&spec),
    };
    let batches = spec.batches;
    let source = Pulling::start(
        consumer,
        settings,
        follow_ack_wait,
        (deleted, max_deliveries),
        run.client.clone(),
        context,
    )
    .await?;
    let spans = ProcessSpans::jetstream(&spec, peer);
    let shared = Shared {
        handler,
        state: run.state,
        settle_spans: Arc::new(SettleSpans::new(&spec, &spans)),
        spans,
        policy: Policy::of(&spec),
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
        args: PhantomData,
    };
    match batches {
        Some(batches) => {
            let source = Batching::new(source, batches.size, batches.wait, spec.concurrency_limit());
            crate::serving::serve(&PerBatch(shared), source, run.stopped).await
        }
        None => crate::serving::serve(&shared, source, run.stopped).await,
    }
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
        let delivery = Delivery::new(&message, info.as_ref(), !self.spans.is_off());
        let cx =
            telemetry_or_default(|| self.spans.start(&message, Some(&delivery), H::TRACE_CONTEXT_IN_BODY));
        let settled = telemetry_or_default(|| self.settle_spans.message(&cx, &message, &delivery));
        drop(delivery);
        let settler = Arc::new(Settler {
            acker,
            mode: self.ack,
            spans: self.settle_spans.clone(),
            message: settled,
            process: cx.clone(),
            settled: AtomicBool::new(false),
            metrics: self.metrics.clone(),
            in_batch: false,
        });
        let mut incoming = Incoming::new(message, cx);
        incoming.subject_offset = self.subject_offset;
        incoming.jetstream = info;
        incoming.settler = Some(settler.clone() as Arc<dyn crate::handler::jetstream::SettleByHand>);

        last_resort(async move {
            let delivered = incoming.jetstream.as_ref().map_or(1, |i| i.delivered);
            let pace = Pace { policy: &self.policy, ack_wait: &self.ack_wait, delivered };
            let outcome = with_progress(invoke(&self.handler, &incoming, &self.state), &*settler, pace).await;
            let failure = match &outcome {
                Outcome::Failure(failure) => {
                    spans::record_failure(&incoming.cx, self.spans.name(), failure);
                    Some(failure)
                }
                Outcome::Success(_) => None,
            };
            self.metrics.processed(started.elapsed(), failure);
            self.settle(&incoming, &settler, &outcome).await;
        })
    }
}

/// A consumer endpoint as registered: its consumer and handler.
pub(crate) struct ConsumerEndpoint<H, T> {
    pub(crate) consumer: JetStreamConsumer,
    pub(crate) handler: H,
    pub(crate) args: PhantomData<fn() -> T>,
}

impl<H, T> ConsumerEndpoint<H, T> {
    fn context(&self) -> String {
        let name = self.consumer.name.as_deref().unwrap_or("handler");
        format!(
            "handler `{name}` on stream `{}`, consumer `{}`",
            self.consumer.stream_name(),
            self.consumer.durable_name()
        )
    }
}

impl<H, T, S> Serve<S> for ConsumerEndpoint<H, T>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + Sync + 'static,
{
    fn describe(&self) -> String {
        self.context()
    }

    fn apply_prefix(&mut self, prefix: &SubjectPrefix) {
        self.consumer.apply_prefix(prefix);
    }

    fn endpoint(&self) -> crate::endpoint::Endpoint {
        crate::endpoint::Endpoint::Consume(self.consumer.clone())
    }

    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>> {
        let client = client.clone();
        Box::pin(async move {
            if H::BATCH != self.consumer.is_batched() {
                let reason = if H::BATCH {
                    "the handler takes `Batch<T>`, but the consumer has no batches: set them with `JetStreamConsumer::batches(size, wait)`"
                } else {
                    "the consumer hands out batches (`batches`), but the handler reads one message: take `Batch<T>`"
                };
                return Err(Rejected::options(reason).into_error(self.context()));
            }
            let feed = if self.consumer.is_ordered() {
                Feed::Ordered(Box::new(
                    super::ordered::prepare(&client, &self.consumer, &self.context()).await?,
                ))
            } else {
                Feed::Pull(Box::new(prepare(&client, &self.consumer, &self.context()).await?))
            };
            Ok(Box::new(ConsumerReady { endpoint: *self, feed }) as Box<dyn Ready<S>>)
        })
    }
}

struct ConsumerReady<H, T> {
    endpoint: ConsumerEndpoint<H, T>,
    feed: Feed,
}

/// Where a ready consumer's messages come from.
enum Feed {
    /// A durable pull consumer, settled from each handler's result (boxed:
    /// made once per start, and far larger than the other).
    Pull(Box<Prepared>),
    /// An ordered consumer, for replay.
    Ordered(Box<super::ordered::Prepared>),
}

impl<H, T, S> Ready<S> for ConsumerReady<H, T>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + Sync + 'static,
{
    fn describe(&self) -> String {
        self.endpoint.context()
    }

    fn subscribed_subject(&self) -> Option<&str> {
        None
    }

    /// A consumer is described as an endpoint (so `STATS` counts what it
    /// processed) marked by its metadata: its subjects take messages into a
    /// stream, they are not request subjects.
    fn info(&self) -> EndpointInfo {
        let consumer = &self.endpoint.consumer;
        let subject = if consumer.filters.is_empty() {
            consumer.stream_name().to_owned()
        } else {
            consumer.filters.join(",")
        };
        EndpointInfo {
            name: endpoint_name(consumer.name.as_deref()),
            subject,
            queue_group: consumer.durable_name().to_owned(),
            metadata: [
                ("nats_otel.kind", "jetstream_consumer"),
                ("nats_otel.stream", consumer.stream_name()),
                ("nats_otel.durable", consumer.durable_name()),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
        }
    }

    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>> {
        let context = self.endpoint.context();
        let ConsumerReady { endpoint, feed } = *self;
        match feed {
            Feed::Pull(prepared) => {
                Box::pin(serve(endpoint.consumer, endpoint.handler, *prepared, run, context))
            }
            Feed::Ordered(prepared) => {
                Box::pin(super::ordered::serve(endpoint.consumer, endpoint.handler, *prepared, run, context))
            }
        }
    }
}
