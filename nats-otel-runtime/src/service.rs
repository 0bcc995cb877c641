//! The service: runs every handler's subscription loop until shutdown.
//!
//! The loop lives here once, generic over the handler; the macros only describe
//! handlers ([`Descriptor`](crate::Descriptor)).

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::Dispatch;
use tracing::instrument::WithSubscriber;

use crate::error::{ServeError, ServeErrorKind};
use crate::handler::{DeclaredHandler, Descriptor};
use crate::metrics::{EndpointIdentity, EndpointMetrics, Instruments};
use crate::peer::Peer;
use crate::reply::{Failure, FailureKind, Outcome};
use crate::serving::{Next, Source, Step};
use crate::spans::{self, InContext, ProcessSpans};
use crate::{ClientEvents, Endpoint, Handler, Incoming, IntoOutcome, JetStreamConsumer, Subscription};

/// Header carrying the description of a failed request (NATS service API).
pub const NATS_SERVICE_ERROR: &str = "Nats-Service-Error";
/// Header carrying the code of a failed request (NATS service API).
pub const NATS_SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";

/// How long [`Service::run_until`] waits for in-flight handlers by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs handlers on a NATS connection.
///
/// ```no_run
/// use nats_otel_runtime::prelude::*;
///
/// #[nats_subscribe("greet.*", queue = "greeters")]
/// async fn greet(name: String) -> String {
///     format!("hello, {name}")
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// Service::new(client)
///     .handler(greet)
///     .run_until(async { tokio::signal::ctrl_c().await.ok(); })
///     .await?;
/// # Ok(()) }
/// ```
pub struct Service<S = ()> {
    client: Client,
    state: S,
    endpoints: Vec<Box<dyn Serve<S>>>,
    shutdown_timeout: Duration,
    events: Option<broadcast::Receiver<async_nats::Event>>,
    prefix: Option<Cow<'static, str>>,
}

impl<S> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("endpoints", &self.endpoints.iter().map(|e| e.describe()).collect::<Vec<_>>())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl Service<()> {
    /// A service without state.
    pub fn new(client: Client) -> Self {
        Self::with_state(client, ())
    }

    /// Sets the state that [`State<T>`](crate::State) extractors read. Handlers added
    /// before keep working: they did not ask for state.
    pub fn state<S: Send + Sync + 'static>(self, state: S) -> Service<S> {
        Service {
            client: self.client,
            state,
            endpoints: self
                .endpoints
                .into_iter()
                .map(|e| Box::new(Stateless(e)) as Box<dyn Serve<S>>)
                .collect(),
            shutdown_timeout: self.shutdown_timeout,
            events: self.events,
            prefix: self.prefix,
        }
    }
}

impl<S: Send + Sync + 'static> Service<S> {
    /// A service whose handlers can extract `State` from `state`.
    pub fn with_state(client: Client, state: S) -> Self {
        Self {
            client,
            state,
            endpoints: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            events: None,
            prefix: None,
        }
    }

    /// Listens to the connection's events (see [`ClientEvents`]): a subscription the
    /// server refuses for lack of permissions then ends `run_until` with a
    /// [`ServeErrorKind::PermissionDenied`] error naming the handler and subject.
    #[must_use]
    pub fn events(mut self, events: &ClientEvents) -> Self {
        self.events = Some(events.subscribe());
        self
    }

    /// Adds a handler declared with `#[nats_subscribe]`.
    pub fn handler<H, T>(self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: DeclaredHandler + 'static,
    {
        match <T::Descriptor as Descriptor>::endpoint() {
            Endpoint::Subscribe(subscription) => self.subscribe_with(subscription, handler),
            Endpoint::Consume(consumer) => self.consume(consumer, handler),
        }
    }

    /// Consumes a JetStream pull consumer with an undecorated async fn: every
    /// message is settled from the handler's result (see [`settle`](crate::settle)).
    pub fn consume<H, T>(mut self, mut consumer: JetStreamConsumer, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        if consumer.name.is_none() {
            consumer.name = Some(Cow::Borrowed(std::any::type_name::<H>()));
        }
        self.endpoints.push(Box::new(ConsumerEndpoint { consumer, handler, args: PhantomData }));
        self
    }

    /// Subscribes an undecorated async fn to `subject` with default options.
    pub fn subscribe<H, T>(self, subject: impl Into<Cow<'static, str>>, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.subscribe_with(Subscription::new(subject), handler)
    }

    /// Subscribes an undecorated async fn with the given options.
    pub fn subscribe_with<H, T>(mut self, mut subscription: Subscription, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        if subscription.name.is_none() {
            subscription.name = Some(Cow::Borrowed(std::any::type_name::<H>()));
        }
        self.endpoints.push(Box::new(CoreEndpoint { subscription, handler, args: PhantomData }));
        self
    }

    /// Puts `prefix` (`"prod"`, `"staging.eu"`) in front of every subject the
    /// service subscribes to: handler subjects, JetStream filters and dead-letter
    /// subjects; captures are read after it. Stream and consumer names are not
    /// changed. Checked once, by [`start`](Self::start), which fails with
    /// [`ServeErrorKind::InvalidSubject`] for a prefix that is not literal tokens.
    ///
    /// Give the [`Publisher`](crate::Publisher::with_subject_prefix) the same prefix.
    ///
    /// ```no_run
    /// # async fn demo(client: async_nats::Client) -> Result<(), nats_otel_runtime::ServeError> {
    /// use nats_otel_runtime::Service;
    /// async fn on_order() {}
    /// let env = std::env::var("APP_ENV").unwrap_or_else(|_| "dev".into());
    /// // subscribes to `dev.orders.*` (or `prod.orders.*`, …)
    /// let running = Service::new(client).subject_prefix(env).subscribe("orders.*", on_order).start().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn subject_prefix(mut self, prefix: impl Into<Cow<'static, str>>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Bounds how long shutdown waits for in-flight handlers (default 30 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Subscribes every handler, serves messages until `signal` completes, then
    /// shuts down gracefully: stops receiving (drain), lets in-flight handlers
    /// finish, flushes their replies, and returns.
    ///
    /// Fails early with an error naming the handler and subject when a subscription
    /// cannot be created or ends unexpectedly.
    ///
    /// The current `tracing` dispatcher is captured when this is called, and every
    /// task the service spawns runs with it.
    pub fn run_until<F>(self, signal: F) -> impl Future<Output = Result<(), ServeError>> + Send
    where
        F: Future + Send,
    {
        let start = self.start();
        async move { start.await?.run_until(signal).await }
    }

    /// Subscribes every handler and returns once the server has registered all the
    /// subscriptions (checked with a round trip), without serving yet: for readiness checks, or to publish
    /// only once handlers are listening. Call [`Started::run_until`] to serve.
    ///
    /// The current `tracing` dispatcher is captured when this is called.
    pub fn start(self) -> impl Future<Output = Result<Started<S>, ServeError>> + Send {
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        async move {
            let Service { client, state, mut endpoints, shutdown_timeout, events, prefix } = self;
            if let Some(prefix) = prefix {
                let prefix = crate::prefix::SubjectPrefix::parse(&prefix)
                    .map_err(|e| ServeError::with_source(ServeErrorKind::InvalidSubject, e))?;
                for endpoint in &mut endpoints {
                    endpoint.apply_prefix(&prefix);
                }
            }
            let mut subscribed = Vec::with_capacity(endpoints.len());
            for endpoint in endpoints {
                subscribed.push(endpoint.prepare(&client).await?);
            }
            server_round_trip(&client).await?;
            Ok(Started { client, state: Arc::new(state), subscribed, shutdown_timeout, dispatch, events })
        }
    }
}

/// A service whose subscriptions are live; see [`Service::start`].
pub struct Started<S> {
    client: Client,
    state: Arc<S>,
    subscribed: Vec<Box<dyn Ready<S>>>,
    shutdown_timeout: Duration,
    dispatch: Dispatch,
    events: Option<broadcast::Receiver<async_nats::Event>>,
}

impl<S> std::fmt::Debug for Started<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("endpoints", &self.subscribed.iter().map(|e| e.describe()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync + 'static> Started<S> {
    /// Serves in the background on the current Tokio runtime; the handle stops it
    /// gracefully. Dropping the handle stops it too (without waiting).
    ///
    /// ```no_run
    /// # async fn demo(client: async_nats::Client) -> Result<(), nats_otel_runtime::ServeError> {
    /// use nats_otel_runtime::Service;
    /// async fn ping() {}
    /// let running = Service::new(client).subscribe("ping", ping).start().await?.spawn();
    /// // … the subscriptions are live …
    /// running.stop().await?; // in-flight handlers finish, replies are flushed
    /// # Ok(()) }
    /// ```
    pub fn spawn(self) -> ServiceHandle {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until(async move {
            let _ = stopped.await;
        }));
        ServiceHandle { stop: Some(stop), task }
    }

    /// Serves messages until `signal` completes, then shuts down gracefully (see
    /// [`Service::run_until`]).
    pub async fn run_until<F: Future + Send>(self, signal: F) -> Result<(), ServeError> {
        let Started { client, state, subscribed, shutdown_timeout, dispatch, events } = self;
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        let instruments = Instruments::global();
        instruments.observe_reconnects(&client, &Peer::of(&client));
        let subscriptions: Vec<(String, String)> = subscribed
            .iter()
            .filter_map(|e| Some((e.subscribed_subject()?.to_owned(), e.describe())))
            .collect();
        for endpoint in subscribed {
            let run = Run {
                client: client.clone(),
                state: state.clone(),
                stopped: stopped.clone(),
                instruments: instruments.clone(),
            };
            loops.spawn(endpoint.serve(run).with_subscriber(dispatch.clone()));
        }

        let mut first_error = tokio::select! {
            _ = signal => None,
            Some(ended) = loops.join_next() => Some(loop_result(ended).err().unwrap_or_else(|| {
                ServeError::new(ServeErrorKind::SubscriptionClosed)
            })),
            refused = watch_events(events, &subscriptions, &instruments) => Some(refused),
        };

        let _ = stop.send(true);
        let drained = tokio::time::timeout(shutdown_timeout, async {
            let mut error = None;
            while let Some(ended) = loops.join_next().await {
                if let Err(e) = loop_result(ended) {
                    error.get_or_insert(e);
                }
            }
            error
        })
        .await;
        match drained {
            Ok(error) => first_error = first_error.or(error),
            Err(_) => {
                loops.abort_all();
                first_error.get_or_insert(
                    ServeError::new(ServeErrorKind::ShutdownTimeout)
                        .context(format!("waited {shutdown_timeout:?}")),
                );
            }
        }
        if let Err(e) = client.flush().await {
            first_error.get_or_insert(ServeError::with_source(ServeErrorKind::Flush, e));
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// How long `start` waits for the server to echo its readiness probe.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns once the server has processed everything this client sent before.
///
/// `Client::flush` only empties the socket buffer, so it proves nothing about the
/// server. The server handles one connection's commands in order, so when a
/// message published to a fresh inbox comes back, every earlier subscription is
/// registered. Clients without permission on `_INBOX.>` never get the echo; after
/// a bounded wait the service starts anyway.
async fn server_round_trip(client: &Client) -> Result<(), ServeError> {
    let inbox = client.new_inbox();
    let mut probe = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| ServeError::with_source(ServeErrorKind::Subscribe, e))?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(|e| ServeError::with_source(ServeErrorKind::Subscribe, e))?;
    client.flush().await.map_err(|e| ServeError::with_source(ServeErrorKind::Subscribe, e))?;
    if tokio::time::timeout(ROUND_TRIP_TIMEOUT, probe.next()).await.is_err() {
        tracing::warn!(
            target: spans::TARGET,
            "the server did not echo the readiness probe within {ROUND_TRIP_TIMEOUT:?}; starting anyway"
        );
    }
    let _ = probe.unsubscribe().await;
    Ok(())
}

/// Follows the connection's events while serving: counts messages dropped for
/// slow consumers (with a rate-limited warning), and returns when the server
/// refuses one of `subscriptions` (subject, description). Pending forever without
/// events.
async fn watch_events(
    events: Option<broadcast::Receiver<async_nats::Event>>,
    subscriptions: &[(String, String)],
    instruments: &Instruments,
) -> ServeError {
    let Some(mut events) = events else { return std::future::pending().await };
    let attributes =
        [opentelemetry::KeyValue::new(crate::semconv::MESSAGING_SYSTEM, crate::semconv::SYSTEM_NATS)];
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        match events.recv().await {
            Ok(async_nats::Event::SlowConsumer(sid)) => {
                instruments.dropped.add(1, &attributes);
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|at| now.duration_since(at) >= SLOW_CONSUMER_WARNING_INTERVAL) {
                    last_warning = Some(now);
                    tracing::warn!(target: spans::TARGET, sid,
                        "slow consumer: the client dropped messages a subscription could not take in time");
                }
            }
            Ok(event) => {
                let Some(subject) = crate::events::refused_subscription(&event) else { continue };
                if let Some((_, described)) = subscriptions.iter().find(|(s, _)| *s == subject) {
                    return ServeError::with_source(ServeErrorKind::PermissionDenied, event.to_string())
                        .context(described.clone());
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// At most one slow-consumer warning per interval: the events can flood.
const SLOW_CONSUMER_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A service serving in the background; see [`Started::spawn`].
#[derive(Debug)]
pub struct ServiceHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl ServiceHandle {
    /// Stops gracefully (drain, finish in-flight handlers, flush) and returns how
    /// the service ended.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    /// Waits for the service to end on its own (it only does on an error).
    pub async fn join(self) -> Result<(), ServeError> {
        let task = self.task;
        task.await.map_err(|e| ServeError::with_source(ServeErrorKind::SubscriptionClosed, e))?
    }

    /// Whether the service has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

fn loop_result(ended: Result<Result<(), ServeError>, tokio::task::JoinError>) -> Result<(), ServeError> {
    ended.map_err(|e| ServeError::with_source(ServeErrorKind::SubscriptionClosed, e))?
}

/// What a subscription loop needs from the service.
pub(crate) struct Run<S> {
    pub(crate) client: Client,
    pub(crate) state: Arc<S>,
    pub(crate) stopped: watch::Receiver<bool>,
    pub(crate) instruments: Arc<Instruments>,
}

/// A registered endpoint, with its handler type erased.
trait Serve<S>: Send {
    fn describe(&self) -> String;
    fn apply_prefix(&mut self, prefix: &crate::prefix::SubjectPrefix);
    /// Subscribes (or binds its consumer), ready to serve.
    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>>;
}

/// An endpoint whose subscription is live, waiting to serve.
trait Ready<S>: Send {
    fn describe(&self) -> String;
    /// The core subject it subscribes to, to match a subscription the server refuses.
    fn subscribed_subject(&self) -> Option<&str>;
    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>>;
}

/// A stateless endpoint added before [`Service::state`].
struct Stateless<E>(E);

impl<S: Send + Sync + 'static> Serve<S> for Stateless<Box<dyn Serve<()>>> {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn apply_prefix(&mut self, prefix: &crate::prefix::SubjectPrefix) {
        self.0.apply_prefix(prefix);
    }

    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>> {
        let prepared = self.0.prepare(client);
        Box::pin(async move { Ok(Box::new(Stateless(prepared.await?)) as Box<dyn Ready<S>>) })
    }
}

impl<S: Send + Sync + 'static> Ready<S> for Stateless<Box<dyn Ready<()>>> {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn subscribed_subject(&self) -> Option<&str> {
        self.0.subscribed_subject()
    }

    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>> {
        let run = Run {
            client: run.client,
            state: Arc::new(()),
            stopped: run.stopped,
            instruments: run.instruments,
        };
        self.0.serve(run)
    }
}

struct CoreEndpoint<H, T> {
    subscription: Subscription,
    handler: H,
    args: PhantomData<fn() -> T>,
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

    fn apply_prefix(&mut self, prefix: &crate::prefix::SubjectPrefix) {
        self.subscription.apply_prefix(prefix);
    }

    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>> {
        let client = client.clone();
        Box::pin(async move {
            let subscription = &self.subscription;
            subscription.validate().map_err(|reason| {
                ServeError::with_source(ServeErrorKind::InvalidSubject, reason).context(self.context())
            })?;
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

    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>> {
        Box::pin(serve_core(*self, run))
    }
}

struct ConsumerEndpoint<H, T> {
    consumer: JetStreamConsumer,
    handler: H,
    args: PhantomData<fn() -> T>,
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

    fn apply_prefix(&mut self, prefix: &crate::prefix::SubjectPrefix) {
        self.consumer.apply_prefix(prefix);
    }

    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>> {
        let client = client.clone();
        Box::pin(async move {
            let prepared = crate::jetstream::prepare(&client, &self.consumer, &self.context()).await?;
            Ok(Box::new(ConsumerReady { endpoint: *self, prepared }) as Box<dyn Ready<S>>)
        })
    }
}

struct ConsumerReady<H, T> {
    endpoint: ConsumerEndpoint<H, T>,
    prepared: crate::jetstream::Prepared,
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

    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>> {
        let context = self.endpoint.context();
        let ConsumerReady { endpoint, prepared } = *self;
        Box::pin(crate::jetstream::serve(endpoint.consumer, endpoint.handler, prepared, run, context))
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
                Next::Ended(Err(crate::connection::subscription_ended(&self.client, &self.context).await))
            }
        }
    }

    async fn stop(&mut self) {
        self.draining = true;
        // Stop receiving; the stream still yields what was already delivered.
        if let Err(e) = self.subscriber.drain().await {
            tracing::warn!(target: spans::TARGET, error = %e, "{}: drain failed", self.context);
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
    let spans = ProcessSpans::new(&endpoint.subscription, peer.clone());
    let metrics = EndpointMetrics::new(
        run.instruments.clone(),
        peer,
        EndpointIdentity {
            destination: endpoint.subscription.subject(),
            group: endpoint.subscription.queue_group(),
            subscription: None,
        },
        false,
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
    crate::serving::serve(&shared, source, run.stopped).await
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
        let cx = crate::guard::span_or_none(|| self.spans.start(&message, H::TRACE_CONTEXT_IN_BODY));
        let mut incoming = Incoming::new(message, cx);
        incoming.subject_offset = self.subject_offset;
        let handled = async move {
            let outcome = invoke(&self.handler, &incoming, &self.state).await;
            // Only the reply subject and the span outlive the handler.
            let Incoming { message, cx, .. } = incoming;
            let failed = finish(&self.client, self.spans.name(), message.reply, &cx, outcome).await;
            self.metrics.processed(started.elapsed(), failed.as_deref());
        };
        // Last resort for user code the service calls after the handler (span
        // processors as the span ends, `tracing` layers): a panic there costs this
        // message's record, never the subscription.
        crate::guard::last_resort(handled)
    }
}

/// Extracts the arguments, runs the handler and turns its output into an
/// [`Outcome`], with its span's context current, catching panics.
///
/// Everything user code does for a message happens inside the guard: extractors
/// (`FromMessage`, captures, payload decoding), the handler, and the output's
/// conversion (a reply's `Serialize` or codec, an error's `Display`, `code`,
/// `retry` and `error_type`, and the drop of both). A panic in any of them is a
/// [`FailureKind::Panicked`] outcome.
///
/// Extraction happens in the handler's first poll, so a handler that completes at
/// once attaches the context a single time.
pub(crate) async fn invoke<H, T, S>(handler: &H, incoming: &Incoming, state: &S) -> Outcome
where
    H: Handler<T, S>,
{
    let run = async {
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(incoming, state))) {
            Ok(Ok(future)) => future,
            Ok(Err(rejection)) => return Outcome::Failure(Failure::rejected(rejection)),
            Err(panic) => return Outcome::Failure(Failure::caught(panic)),
        };
        match AssertUnwindSafe(future.map(IntoOutcome::into_outcome)).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => Outcome::Failure(Failure::caught(panic)),
        }
    };
    InContext::new(&incoming.cx, run).await
}

/// Records the outcome on the span (`name`) and answers requests; gives the
/// `error.type` of a failure.
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
) -> Option<Cow<'static, str>> {
    let failure = match outcome {
        Outcome::Success(reply) => {
            let reply_to = reply_to?;
            // An atomic load: async-nats keeps it current across reconnections.
            let max_payload = client.max_payload();
            let size = reply.payload.len() + reply.headers.as_ref().map_or(0, headers_wire_len);
            if size > max_payload {
                let failure = Failure::too_large(size, max_payload);
                answer_failure(client, name, reply_to, span, &failure).await;
                return Some(failure.error_type);
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
                retry: crate::Retry::Backoff,
            };
            spans::record_failure(span, name, &failure);
            return Some(failure.error_type);
        }
        Outcome::Failure(failure) => failure,
    };
    match reply_to {
        Some(reply_to) => answer_failure(client, name, reply_to, span, &failure).await,
        None => spans::record_failure(span, name, &failure),
    }
    Some(failure.error_type)
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

/// The size of a header block on the wire (`NATS/1.0`, one `name: value` line per
/// value, a blank line), as the server counts it against `max_payload`; none for
/// an empty map, which async-nats sends as a plain `PUB`.
fn headers_wire_len(headers: &HeaderMap) -> usize {
    if headers.is_empty() {
        return 0;
    }
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values.iter().map(|v| name.len() + v.as_str().len() + ": \r\n".len()).sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n\r\n".len() + lines
}

/// The longest `Nats-Service-Error` description sent, in bytes: an error's text
/// can be anything, and the error reply must fit in the server's `max_payload`.
pub(crate) const MAX_SERVICE_ERROR_DESCRIPTION: usize = 1024;

/// The service error headers' size around the description: the version line,
/// both names, a five-digit code, line ends.
const SERVICE_ERROR_HEADERS_ROOM: usize = 66;

/// The NATS service API's error headers. The description is kept to one line (a
/// header value cannot hold line breaks) and cut on a character boundary at
/// [`MAX_SERVICE_ERROR_DESCRIPTION`] bytes, or less when `max_payload` is smaller,
/// so the error reply always fits.
pub(crate) fn service_error_headers(code: u16, description: &str, max_payload: usize) -> HeaderMap {
    let cap = MAX_SERVICE_ERROR_DESCRIPTION.min(max_payload.saturating_sub(SERVICE_ERROR_HEADERS_ROOM));
    let mut end = description.len().min(cap);
    while !description.is_char_boundary(end) {
        end -= 1;
    }
    let cut = description.get(..end).unwrap_or_default();
    let one_line: String = cut.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut headers = HeaderMap::new();
    headers.insert(NATS_SERVICE_ERROR, one_line.as_str());
    headers.insert(NATS_SERVICE_ERROR_CODE, code.to_string().as_str());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wire_length_counts_every_line_as_sent() {
        assert_eq!(headers_wire_len(&HeaderMap::new()), 0);
        let mut headers = HeaderMap::new();
        headers.insert("A", "b");
        headers.append("A", "cd");
        headers.insert("Name", "");
        // "NATS/1.0\r\n" "A: b\r\n" "A: cd\r\n" "Name: \r\n" "\r\n"
        assert_eq!(headers_wire_len(&headers), 10 + 6 + 7 + 8 + 2);
    }

    #[test]
    fn service_error_descriptions_are_one_line_cut_on_a_char_boundary_and_fit_max_payload() {
        let headers = service_error_headers(404, "not\r\nfound", 1 << 20);
        assert_eq!(headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str()), Some("not  found"));
        assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).map(|v| v.as_str()), Some("404"));

        let huge = format!("x{}", "é".repeat(10_000));
        let headers = service_error_headers(500, &huge, 1 << 20);
        let cut = headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str().to_owned()).unwrap_or_default();
        assert_eq!(cut.len(), MAX_SERVICE_ERROR_DESCRIPTION - 1, "the cut falls inside an `é`");
        assert!(huge.starts_with(&cut));

        for max_payload in [0, 10, 66, 67, 100, 512, 1090, 1091, 4096] {
            let headers = service_error_headers(u16::MAX, &huge, max_payload);
            let size = headers_wire_len(&headers);
            assert!(
                size <= max_payload.max(SERVICE_ERROR_HEADERS_ROOM),
                "{size} bytes for max_payload {max_payload}"
            );
        }
    }
}
