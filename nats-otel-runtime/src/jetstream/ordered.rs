//! An ordered consumer as an endpoint: replay, one message at a time in stream
//! order, from an ephemeral consumer that async-nats recreates from the last
//! sequence seen whenever it is lost. Nothing is acked or delivered again.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt;

use crate::endpoint::JetStreamConsumer;
use crate::error::{ServeError, ServeErrorKind};
use crate::handler::{Handler, Incoming, JetStreamInfo, Outcome};
use crate::otel::TARGET;
use crate::otel::metrics::EndpointMetrics;
use crate::otel::peer::Peer;
use crate::otel::spans::{self, Delivery, ProcessSpans};
use crate::serving::invoke::{invoke, last_resort, telemetry_or_default};
use crate::serving::{Next, Run, Source, Step};

/// An ordered consumer made at start, its messages flowing.
pub(crate) struct Prepared {
    messages: pull::Ordered,
}

/// Makes the instance's ephemeral consumer, in a traced set-up span.
pub(crate) async fn prepare(
    client: &async_nats::Client,
    spec: &JetStreamConsumer,
    context: &str,
) -> Result<Prepared, ServeError> {
    spec.validate().map_err(|rejected| rejected.into_error(context.to_owned()))?;
    let messages = super::setup::ordered_consumer(client, spec, context).await?;
    Ok(Prepared { messages })
}

/// Where an ordered consumer's work comes from: its messages, one at a time.
struct Replaying {
    /// `None` once stopped.
    messages: Option<pull::Ordered>,
    /// The stream, and the consumer the last message came from: a new one
    /// means async-nats recreated it. Shared by the metadata of its messages.
    names: (Arc<str>, Arc<str>),
    /// The stream sequence of the last message.
    last: u64,
    client: async_nats::Client,
    context: String,
}

/// A message and its delivery metadata, read once.
type Replayed = (Message, Option<JetStreamInfo>);

impl Source for Replaying {
    type Work = Replayed;

    async fn next(&mut self, busy: usize) -> Next<Replayed> {
        // In order: the next message only once the last one is handled.
        if busy > 0 {
            return std::future::pending().await;
        }
        let Some(messages) = self.messages.as_mut() else { return Next::Ended(Ok(())) };
        loop {
            match messages.next().await {
                Some(Ok(message)) => {
                    let info = JetStreamInfo::from_message(&message, &self.names);
                    if let Some(info) = &info {
                        if info.consumer != self.names.1 {
                            let (stream, previous) = &self.names;
                            super::setup::record_recreated(stream, previous, &info.consumer, self.last);
                            self.names.1 = info.consumer.clone();
                        }
                        self.last = info.stream_sequence;
                    }
                    return Next::Work((message, info));
                }
                Some(Err(e)) => {
                    // Recreation is async-nats' (it retries until the consumer
                    // is back); anything else is said, and the stream goes on.
                    tracing::warn!(target: TARGET, error = %e, "{}: ordered consumer", self.context);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => {
                    return Next::Ended(Err(
                        ServeError::new(ServeErrorKind::SubscriptionClosed).context(self.context.clone())
                    ));
                }
            }
        }
    }

    async fn stop(&mut self) {
        self.messages = None;
    }

    /// Deletes the instance's consumer: the server would drop it only after
    /// its inactivity threshold.
    async fn close(self) {
        let js = jetstream::new(self.client.clone());
        let (stream, consumer) = &self.names;
        if let Err(e) = js.delete_consumer_from_stream(&**consumer, &**stream).await {
            tracing::debug!(target: TARGET, error = %e, "{}: ordered consumer not deleted", self.context);
        }
    }
}

/// What handling one replayed message means: its span, the handler, no settlement.
struct Replay<H, T, S> {
    handler: H,
    state: Arc<S>,
    spans: ProcessSpans,
    metrics: Arc<EndpointMetrics>,
    subject_offset: usize,
    args: PhantomData<fn() -> T>,
}

impl<H, T, S> Step for Replay<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    type Work = Replayed;

    fn handle(&self, (message, info): Replayed) -> impl Future<Output = ()> + Send + '_ {
        let started = std::time::Instant::now();
        self.metrics.received(message.payload.len());
        let (message, _acker) = message.split();
        let delivery = Delivery::new(&message, info.as_ref(), !self.spans.is_off());
        let cx =
            telemetry_or_default(|| self.spans.start(&message, Some(&delivery), H::TRACE_CONTEXT_IN_BODY));
        drop(delivery);
        let mut incoming = Incoming::new(message, cx);
        incoming.subject_offset = self.subject_offset;
        incoming.jetstream = info;
        last_resort(async move {
            let outcome = invoke(&self.handler, &incoming, &self.state).await;
            let failure = match &outcome {
                Outcome::Failure(failure) => {
                    spans::record_failure(&incoming.cx, self.spans.name(), failure);
                    Some(failure)
                }
                Outcome::Success(_) => None,
            };
            self.metrics.processed(started.elapsed(), failure);
        })
    }
}

/// Replays until stopped.
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
    let peer = Peer::of(&run.client);
    let metrics = super::shared::metrics(&spec, &run, &peer);
    let step = Replay {
        handler,
        state: run.state,
        spans: ProcessSpans::jetstream(&spec, peer),
        metrics,
        subject_offset: spec.prefix_tokens,
        args: PhantomData,
    };
    let source = Replaying {
        messages: Some(prepared.messages),
        names: (Arc::from(spec.stream_name()), Arc::from(spec.durable_name())),
        last: 0,
        client: run.client.clone(),
        context,
    };
    crate::serving::serve(&step, source, run.stopped).await
}
