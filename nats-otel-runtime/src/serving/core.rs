//! A core NATS subscription as an endpoint: messages from a `Subscriber`, each
//! answered (requests) and recorded.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;

use super::invoke::{invoke, last_resort, telemetry_or_default};
use super::{BoxFuture, Next, Ready, Run, Serve, Source, Step};
use crate::endpoint::Subscription;
use crate::endpoint::discovery::{EndpointInfo, endpoint_name};
use crate::endpoint::prefix::SubjectPrefix;
use crate::error::{ServeError, ServeErrorKind};
use crate::handler::reply::{Failure, FailureKind, Outcome, headers_wire_len, service_error_headers};
use crate::handler::{Handler, Incoming, Retry};
use crate::otel::TARGET;
use crate::otel::metrics::{EndpointIdentity, EndpointMetrics};
use crate::otel::peer::Peer;
use crate::otel::spans::{self, ProcessSpans};

/// A core endpoint as registered: its subscription and handler.
pub(crate) struct CoreEndpoint<H, T> {
    pub(crate) subscription: Subscription,
    pub(crate) handler: H,
    pub(crate) args: PhantomData<fn() -> T>,
}

impl<H, T> CoreEndpoint<H, T> {
    fn context(&self) -> String {
        let name = self.subscription.name.as_deref().unwrap_or("handler");
        format!("handler `{name}` on subject `{}`", self.subscription.subject())
    }
}

impl<H, T, S> Serve<S> for CoreEndpoint<H, T>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + Sync + 'static,
{
    fn describe(&self) -> String {
        self.context()
    }

    fn apply_prefix(&mut self, prefix: &SubjectPrefix) {
        self.subscription.apply_prefix(prefix);
    }

    fn endpoint(&self) -> crate::endpoint::Endpoint {
        crate::endpoint::Endpoint::Subscribe(self.subscription.clone())
    }

    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>> {
        let client = client.clone();
        Box::pin(async move {
            let subscription = &self.subscription;
            subscription.validate().map_err(|rejected| rejected.into_error(self.context()))?;
            let subject = subscription.subject().to_owned();
            let subscribed = match subscription.queue_group() {
                Some(queue) => client.queue_subscribe(subject, queue.to_owned()).await,
                None => client.subscribe(subject).await,
            };
            let subscriber = subscribed
                .map_err(|e| ServeError::with_source(ServeErrorKind::Subscribe, e).context(self.context()))?;
            Ok(Box::new(CoreReady { endpoint: *self, subscriber }) as Box<dyn Ready<S>>)
        })
    }
}

struct CoreReady<H, T> {
    endpoint: CoreEndpoint<H, T>,
    subscriber: Subscriber,
}

impl<H, T, S> Ready<S> for CoreReady<H, T>
where
    H: Handler<T, S>,
    T: 'static,
    S: Send + Sync + 'static,
{
    fn describe(&self) -> String {
        self.endpoint.context()
    }

    fn subscribed_subject(&self) -> Option<&str> {
        Some(self.endpoint.subscription.subject())
    }

    fn info(&self) -> EndpointInfo {
        let subscription = &self.endpoint.subscription;
        EndpointInfo {
            name: endpoint_name(subscription.name.as_deref()),
            subject: subscription.subject().to_owned(),
            queue_group: subscription.queue_group().unwrap_or_default().to_owned(),
            metadata: Default::default(),
        }
    }

    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>> {
        Box::pin(serve_core(*self, run))
    }
}

/// Everything handling one core message needs: the core kind's [`Step`].
struct Shared<H, T, S> {
    handler: H,
    state: Arc<S>,
    client: Client,
    spans: ProcessSpans,
    metrics: EndpointMetrics,
    /// Tokens of the service's subject prefix, skipped when reading captures.
    subject_offset: usize,
    args: PhantomData<fn() -> T>,
}

/// A core subscription as the serving loop's source.
struct CoreSource {
    subscriber: Subscriber,
    limit: usize,
    draining: bool,
    client: Client,
    context: String,
}

impl Source for CoreSource {
    type Work = Message;

    async fn next(&mut self, busy: usize) -> Next<Message> {
        if busy >= self.limit {
            return std::future::pending().await;
        }
        match self.subscriber.next().await {
            Some(message) => Next::Work(message),
            None if self.draining => Next::Ended(Ok(())),
            // Ended without a drain: a dead connection task, or a subscription closed
            // under a live client; the client's `Connected` state says nothing either way.
            None => {
                Next::Ended(Err(super::connection::subscription_ended(&self.client, &self.context).await))
            }
        }
    }

    async fn stop(&mut self) {
        self.draining = true;
        // Stop receiving; the stream still yields what was already delivered.
        if let Err(e) = self.subscriber.drain().await {
            tracing::warn!(target: TARGET, error = %e, "{}: drain failed", self.context);
        }
    }

    async fn close(self) {}
}

impl<H, T, S> Step for Shared<H, T, S>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    type Work = Message;

    fn handle(&self, message: Message) -> impl Future<Output = ()> + Send + '_ {
        self.process(message)
    }
}

async fn serve_core<H, T, S>(ready: CoreReady<H, T>, run: Run<S>) -> Result<(), ServeError>
where
    H: Handler<T, S>,
    S: Send + Sync + 'static,
{
    let CoreReady { endpoint, subscriber } = ready;
    let context = endpoint.context();
    let peer = Peer::of(&run.client);
    let spans = ProcessSpans::core(&endpoint.subscription, peer.clone());
    let metrics = EndpointMetrics::new(
        run.instruments.clone(),
        peer,
        EndpointIdentity {
            destination: endpoint.subscription.subject(),
            group: endpoint.subscription.queue_group(),
            subscription: None,
        },
        false,
        run.stats.clone(),
    );
    let source = CoreSource {
        subscriber,
        limit: endpoint.subscription.concurrency_limit().max(1),
        draining: false,
        client: run.client.clone(),
        context,
    };
    let shared = Shared {
        handler: endpoint.handler,
        state: run.state,
        client: run.client,
        spans,
        metrics,
        subject_offset: endpoint.subscription.prefix_tokens,
        args: PhantomData,
    };
    super::serve(&shared, source, run.stopped).await
}

impl<H, T, S> Shared<H, T, S>
where
    H: Handler<T, S>,
{
    /// Opens the span at once and gives the rest as a future that holds only
    /// what it needs: every in-flight message is one such future, moved into the
    /// set of handlers at work, so its size is copied per message.
    fn process(&self, message: Message) -> impl Future<Output = ()> + Send + '_
    where
        S: Send + Sync + 'static,
    {
        let started = std::time::Instant::now();
        self.metrics.received(message.payload.len());
        // The propagator, the sampler and span processors are the user's code too:
        // if they panic, the message is handled without a span.
        let cx = telemetry_or_default(|| self.spans.start(&message, None, H::TRACE_CONTEXT_IN_BODY));
        let mut incoming = Incoming::new(message, cx);
        incoming.subject_offset = self.subject_offset;
        let handled = async move {
            let outcome = invoke(&self.handler, &incoming, &self.state).await;
            // Only the reply subject and the span outlive the handler.
            let Incoming { message, cx, .. } = incoming;
            let failed = finish(&self.client, self.spans.name(), message.reply, &cx, outcome).await;
            self.metrics.processed(started.elapsed(), failed.as_ref());
        };
        // Last resort for user code the service calls after the handler (span
        // processors as the span ends, `tracing` layers): a panic there costs this
        // message's record, never the subscription.
        last_resort(handled)
    }
}

/// Records the outcome on the span (`name`) and answers requests; gives the
/// failure, if any.
///
/// A reply larger than the server's `max_payload` is not published (the server
/// would refuse it, and the requester would wait for its timeout): the requester
/// gets a 500 service error instead.
async fn finish(
    client: &Client,
    name: &str,
    reply_to: Option<async_nats::Subject>,
    span: &opentelemetry::Context,
    outcome: Outcome,
) -> Option<Failure> {
    let failure = match outcome {
        Outcome::Success(reply) => {
            let reply_to = reply_to?;
            // An atomic load: async-nats keeps it current across reconnections.
            let max_payload = client.max_payload();
            let size = reply.payload.len() + reply.headers.as_ref().map_or(0, headers_wire_len);
            if size > max_payload {
                let failure = Failure::too_large(size, max_payload);
                answer_failure(client, name, reply_to, span, &failure).await;
                return Some(failure);
            }
            let sent = match reply.headers {
                Some(headers) => client.publish_with_headers(reply_to, headers, reply.payload).await,
                None => client.publish(reply_to, reply.payload).await,
            };
            let Err(e) = sent else { return None };
            let failure = Failure {
                kind: FailureKind::Reply,
                code: 500,
                error_type: Cow::Borrowed("async_nats::PublishError"),
                message: format!("failed to send the reply: {e}"),
                retry: Retry::Backoff,
            };
            spans::record_failure(span, name, &failure);
            return Some(failure);
        }
        Outcome::Failure(failure) => failure,
    };
    match reply_to {
        Some(reply_to) => answer_failure(client, name, reply_to, span, &failure).await,
        None => spans::record_failure(span, name, &failure),
    }
    Some(failure)
}

/// Records `failure` on the span and sends the requester its service error.
async fn answer_failure(
    client: &Client,
    name: &str,
    reply_to: async_nats::Subject,
    span: &opentelemetry::Context,
    failure: &Failure,
) {
    spans::record_failure(span, name, failure);
    let headers = service_error_headers(failure.code(), failure.message(), client.max_payload());
    if let Err(e) = client.publish_with_headers(reply_to, headers, Bytes::new()).await {
        spans::warn(span, name, "failed to send the error reply", Some(&e));
    }
}
