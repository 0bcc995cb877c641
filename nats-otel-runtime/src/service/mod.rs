//! The service: registers endpoints of every kind, starts them, runs each on
//! its own task until shutdown, and stops them gracefully.
//!
//! The loop itself is [`serving`](crate::serving)'s, written once; the macros
//! only describe handlers ([`Descriptor`](crate::Descriptor)).

mod discovery;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::Dispatch;
use tracing::instrument::WithSubscriber;

use crate::asyncapi::{AsyncApi, Received, Sent};
use crate::endpoint::discovery::{EndpointInfo, EndpointStats, StatsSnapshot};
use crate::endpoint::prefix::SubjectPrefix;
use crate::endpoint::{DeclaredHandler, Descriptor, Endpoint, JetStreamConsumer, Subscription};
use crate::error::{ServeError, ServeErrorKind};
use crate::events::ClientEvents;
use crate::handler::Handler;
use crate::handler::message::NatsMessage;
use crate::handler::shape::{HandlerShape, PayloadShape, Schemas};
use crate::jetstream::ConsumerEndpoint;
use crate::otel::metrics::Instruments;
use crate::otel::peer::Peer;
use crate::otel::{TARGET, semconv};
use crate::serving::core::CoreEndpoint;
use crate::serving::{BoxFuture, Ready, Run, Serve};

/// How long [`NatsService::run_until`] waits for in-flight handlers by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

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
/// NatsService::new(client)
///     .handler(greet)
///     .run_until(async { tokio::signal::ctrl_c().await.ok(); })
///     .await?;
/// # Ok(()) }
/// ```
pub struct NatsService<S = ()> {
    /// `None` for a service built for its contract only ([`NatsService::without_connection`]).
    client: Option<Client>,
    state: S,
    endpoints: Vec<Registered<S>>,
    /// The typed messages the service says it sends ([`NatsService::sends`]).
    sends: Vec<Sends>,
    /// The streams it creates or updates at start ([`NatsService::stream`]).
    streams: Vec<async_nats::jetstream::stream::Config>,
    shutdown_timeout: Duration,
    events: Option<broadcast::Receiver<async_nats::Event>>,
    prefix: Option<Cow<'static, str>>,
    identity: IdentityParts,
}

/// An endpoint as registered: how it is served, and what its handler reads and
/// answers (for the contract).
struct Registered<S> {
    serve: Box<dyn Serve<S>>,
    shape: fn(&mut Schemas) -> HandlerShape,
}

/// A typed message a service sends, for the contract.
#[derive(Debug, Clone, Copy)]
struct Sends {
    template: &'static str,
    stream: Option<&'static str>,
    shape: fn(&mut Schemas) -> PayloadShape,
}

/// What `name`, `version`, `description` and `metadata` set, checked at start.
#[derive(Debug, Default, Clone)]
struct IdentityParts {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
}

impl IdentityParts {
    fn build(self) -> Result<Option<discovery::Identity>, ServeError> {
        let Some(name) = self.name else {
            if self.version.is_some() || self.description.is_some() || !self.metadata.is_empty() {
                return Err(ServeError::new(ServeErrorKind::InvalidIdentity).context(
                    "a version, description or metadata without a name: add `.name(..)`".to_owned(),
                ));
            }
            return Ok(None);
        };
        let Some(version) = self.version else {
            return Err(ServeError::new(ServeErrorKind::InvalidIdentity).context(format!(
                "service `{name}` has no version: add `.version(\"1.0.0\")` (ADR-32 requires one)"
            )));
        };
        let identity =
            discovery::Identity { name, version, description: self.description, metadata: self.metadata };
        identity.validate()?;
        Ok(Some(identity))
    }
}

impl<S> std::fmt::Debug for NatsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsService")
            .field("endpoints", &self.endpoints.iter().map(|e| e.serve.describe()).collect::<Vec<_>>())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl NatsService<()> {
    /// A service without state.
    pub fn new(client: Client) -> Self {
        Self::with_state(client, ())
    }

    /// A service without a connection, for its contract only: build it as the
    /// real one (the same function can do both) and call
    /// [`asyncapi`](Self::asyncapi), without a server; [`start`](Self::start)
    /// fails with [`ServeErrorKind::NoConnection`].
    ///
    /// ```
    /// use nats_otel_runtime::NatsService;
    /// async fn quote() -> &'static str { "42" }
    ///
    /// fn pricing(service: NatsService) -> NatsService {
    ///     service.name("pricing").version("1.2.0").subscribe("quotes.get", quote)
    /// }
    ///
    /// let document = pricing(NatsService::without_connection()).asyncapi().unwrap();
    /// assert_eq!(document.as_value()["info"]["title"], "pricing");
    /// ```
    pub fn without_connection() -> Self {
        Self::build(None, ())
    }

    /// Sets the state that [`State<T>`](crate::State) extractors read. Handlers added
    /// before keep working: they did not ask for state.
    pub fn state<S: Send + Sync + 'static>(self, state: S) -> NatsService<S> {
        NatsService {
            client: self.client,
            state,
            endpoints: self
                .endpoints
                .into_iter()
                .map(|e| Registered { serve: Box::new(Stateless(e.serve)), shape: e.shape })
                .collect(),
            sends: self.sends,
            streams: self.streams,
            shutdown_timeout: self.shutdown_timeout,
            events: self.events,
            prefix: self.prefix,
            identity: self.identity,
        }
    }
}

impl<S: Send + Sync + 'static> NatsService<S> {
    /// A service whose handlers can extract `State` from `state`.
    pub fn with_state(client: Client, state: S) -> Self {
        Self::build(Some(client), state)
    }

    fn build(client: Option<Client>, state: S) -> Self {
        Self {
            client,
            state,
            endpoints: Vec::new(),
            sends: Vec::new(),
            streams: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            events: None,
            prefix: None,
            identity: IdentityParts::default(),
        }
    }

    /// Makes the service discoverable through the NATS Services API (ADR-32):
    /// it answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (also `.<name>` and
    /// `.<name>.<id>`), so `nats micro ls|info|stats` and the other languages'
    /// clients find it, its endpoints and their counts. Letters, digits, `-` and
    /// `_` only; needs a [`version`](Self::version). Without a name the service
    /// answers none of them. Checked at start; a literal wrapped in
    /// `service_name!("pricing")` is checked at compile time (as is
    /// `service_version!`).
    ///
    /// ```no_run
    /// # async fn demo(client: async_nats::Client) -> Result<(), nats_otel_runtime::ServeError> {
    /// use nats_otel_runtime::NatsService;
    /// async fn quote() -> &'static str { "42" }
    /// let running = NatsService::new(client)
    ///     .name("pricing")
    ///     .version("1.2.0")
    ///     .description("Prices and quotes")
    ///     .metadata("team", "payments")
    ///     .subscribe("quotes.get", quote)
    ///     .start()
    ///     .await?
    ///     .spawn();
    /// println!("instance {}", running.id());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.identity.name = Some(name.into());
        self
    }

    /// The service's version: Semantic Versioning 2.0 (`1.2.0`), as ADR-32 requires.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.identity.version = Some(version.into());
        self
    }

    /// A description, for `INFO`.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.identity.description = Some(description.into());
        self
    }

    /// One metadata entry, for `PING`, `INFO` and `STATS`.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.identity.metadata.insert(key.into(), value.into());
        self
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
        let shape = <T::Descriptor as Descriptor>::shape;
        match <T::Descriptor as Descriptor>::endpoint() {
            Endpoint::Subscribe(subscription) => self.add_subscription(subscription, handler, shape),
            Endpoint::Consume(consumer) => self.add_consumer(consumer, handler, shape),
        }
    }

    /// Consumes a JetStream pull consumer with an undecorated async fn: every
    /// message is settled from the handler's result (see [`settle`](crate::settle)).
    pub fn consume<H, T>(self, consumer: JetStreamConsumer, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add_consumer(consumer, handler, HandlerShape::unknown)
    }

    fn add_consumer<H, T>(
        mut self,
        mut consumer: JetStreamConsumer,
        handler: H,
        shape: fn(&mut Schemas) -> HandlerShape,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        if consumer.name.is_none() {
            consumer.name = Some(Cow::Borrowed(std::any::type_name::<H>()));
        }
        let serve = Box::new(ConsumerEndpoint { consumer, handler, args: PhantomData });
        self.endpoints.push(Registered { serve, shape });
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
    pub fn subscribe_with<H, T>(self, subscription: Subscription, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add_subscription(subscription, handler, HandlerShape::unknown)
    }

    fn add_subscription<H, T>(
        mut self,
        mut subscription: Subscription,
        handler: H,
        shape: fn(&mut Schemas) -> HandlerShape,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        if subscription.name.is_none() {
            subscription.name = Some(Cow::Borrowed(std::any::type_name::<H>()));
        }
        let serve = Box::new(CoreEndpoint { subscription, handler, args: PhantomData });
        self.endpoints.push(Registered { serve, shape });
        self
    }

    /// Declares a stream the service needs: [`start`](Self::start) creates it,
    /// or updates it to this configuration, before any consumer binds, in a
    /// `jetstream.create_stream` span that says whether it was `created`,
    /// `updated` or `unchanged` (`messaging.nats.jetstream.setup`). Each
    /// consumer on a declared stream must filter within its subjects, or start
    /// fails naming the filter and the subjects. The subject prefix does not
    /// apply to a declared stream's subjects: give them in full.
    ///
    /// ```no_run
    /// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use async_nats::jetstream::stream;
    /// use nats_otel_runtime::prelude::*;
    ///
    /// #[jetstream_consumer(stream = "ORDERS", durable = "billing", filter = "orders.*.placed")]
    /// async fn bill(body: String) -> Result<(), ServiceError> { Ok(()) }
    ///
    /// NatsService::new(client)
    ///     .stream(stream::Config { name: "ORDERS".into(), subjects: vec!["orders.>".into()], ..Default::default() })
    ///     .handler(bill)
    ///     .run_until(std::future::pending::<()>())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn stream(mut self, config: async_nats::jetstream::stream::Config) -> Self {
        self.streams.push(config);
        self
    }

    /// Declares that the service sends messages of type `M` (published with the
    /// [`Publisher`](crate::Publisher) elsewhere in the application), for its
    /// contract: a `send` operation on `M`'s subject template in
    /// [`asyncapi`](Self::asyncapi). Nothing changes at run time.
    ///
    /// ```
    /// use nats_otel_runtime::prelude::*;
    /// use nats_otel_runtime::NatsMessage;
    ///
    /// #[derive(Serialize, Deserialize, NatsMessage)]
    /// #[nats(subject = "orders.{region}.shipped")]
    /// struct OrderShipped { region: String, id: u64 }
    ///
    /// let service = NatsService::without_connection().name("shipping").version("1.0.0").sends::<OrderShipped>();
    /// let document = service.asyncapi().unwrap();
    /// let operation = &document.as_value()["operations"]["send_OrderShipped"];
    /// assert_eq!(operation["action"], "send");
    /// ```
    #[must_use]
    pub fn sends<M: NatsMessage>(mut self) -> Self {
        self.sends.push(Sends { template: M::TEMPLATE, stream: M::STREAM, shape: M::payload_shape });
        self
    }

    /// The service's AsyncAPI 3.0 document (see [`asyncapi`](crate::asyncapi)
    /// for what it holds): its handlers as `receive` operations (with replies),
    /// the messages it [`sends`](Self::sends), their payload schemas (feature
    /// `schemars`), queue groups and JetStream settings. Built from the
    /// endpoints as they will be served, the subject prefix applied; needs the
    /// service's [`name`](Self::name) and [`version`](Self::version).
    ///
    /// A running named service also answers `$SRV.ASYNCAPI.<name>` (and
    /// `$SRV.ASYNCAPI`, `$SRV.ASYNCAPI.<name>.<id>`) with it, and says so in its
    /// Services API metadata (`nats_otel.asyncapi`).
    pub fn asyncapi(&self) -> Result<AsyncApi, ServeError> {
        let identity = self.identity.clone().build()?.ok_or_else(|| {
            ServeError::new(ServeErrorKind::InvalidIdentity).context(
                "an AsyncAPI document needs the service's name: add `.name(..)` and `.version(..)`"
                    .to_owned(),
            )
        })?;
        let prefix = self.checked_prefix()?;
        contract(&identity, &self.endpoints, &self.sends, prefix.as_ref())
    }

    /// The subject prefix, checked.
    fn checked_prefix(&self) -> Result<Option<SubjectPrefix>, ServeError> {
        self.prefix
            .as_deref()
            .map(SubjectPrefix::parse)
            .transpose()
            .map_err(|e| ServeError::with_source(ServeErrorKind::InvalidSubject, e))
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
    /// use nats_otel_runtime::NatsService;
    /// async fn on_order() {}
    /// let env = std::env::var("APP_ENV").unwrap_or_else(|_| "dev".into());
    /// // subscribes to `dev.orders.*` (or `prod.orders.*`, …)
    /// let running = NatsService::new(client).subject_prefix(env).subscribe("orders.*", on_order).start().await?;
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
            let prefix = self.checked_prefix()?;
            let NatsService {
                client,
                state,
                mut endpoints,
                sends,
                streams,
                shutdown_timeout,
                events,
                prefix: _,
                identity,
            } = self;
            let Some(client) = client else {
                return Err(ServeError::new(ServeErrorKind::NoConnection).context(
                    "built with `NatsService::without_connection()` for its contract: use `NatsService::new(client)` to serve"
                        .to_owned(),
                ));
            };
            let mut identity = identity.build()?;
            let document = identity
                .as_ref()
                .map(|identity| contract(identity, &endpoints, &sends, prefix.as_ref()))
                .transpose()?;
            if let Some(identity) = &mut identity {
                identity
                    .metadata
                    .insert(ASYNCAPI_METADATA.to_owned(), discovery::asyncapi_subject(&identity.name));
            }
            if let Some(prefix) = &prefix {
                for endpoint in &mut endpoints {
                    endpoint.serve.apply_prefix(prefix);
                }
            }
            // Streams declared with their consumers (`#[derive(NatsStream)]`), once each.
            let mut streams = streams;
            for endpoint in &endpoints {
                if let Endpoint::Consume(consumer) = endpoint.serve.endpoint()
                    && let Some(declared) = consumer.declared_stream
                    && !streams.iter().any(|s| s.name == declared.name)
                {
                    streams.push(*declared);
                }
            }
            check_declared_streams(&streams, &endpoints)?;
            let jetstream = !streams.is_empty()
                || endpoints.iter().any(|e| matches!(e.serve.endpoint(), Endpoint::Consume(_)));
            let service_name = identity.as_ref().map_or("service", |identity| identity.name.as_str());
            let set_up = async {
                for stream in &streams {
                    crate::jetstream::setup::ensure_stream(&client, stream).await?;
                }
                let mut subscribed = Vec::with_capacity(endpoints.len());
                for endpoint in endpoints {
                    subscribed.push(endpoint.serve.prepare(&client).await?);
                }
                Ok(subscribed)
            };
            // JetStream set-up in one trace: `start {name}` over its steps.
            let subscribed = if jetstream {
                crate::jetstream::setup::in_start_span(service_name, set_up).await?
            } else {
                set_up.await?
            };
            let counted: Vec<(EndpointInfo, Arc<EndpointStats>)> =
                subscribed.iter().map(|endpoint| (endpoint.info(), Arc::default())).collect();
            let document = document.map(|document| Bytes::from(document.to_json()));
            let registry = Arc::new(discovery::Registry::new(identity, counted, document));
            let control = discovery::subscribe(&client, &registry).await?;
            server_round_trip(&client).await?;
            if let Some(identity) = &registry.identity {
                tracing::info!(target: TARGET, id = %registry.id,
                    "service `{}` {} is discoverable (Services API)", identity.name, identity.version);
            }
            for endpoint in &subscribed {
                tracing::info!(target: TARGET, "serving {}", endpoint.describe());
            }
            Ok(Started {
                client,
                state: Arc::new(state),
                subscribed,
                shutdown_timeout,
                dispatch,
                events,
                registry,
                control,
            })
        }
    }
}

/// Every consumer on a declared stream filters within the stream's subjects:
/// the rule the macros check at compile time for a stream declared as a type.
fn check_declared_streams<S>(
    streams: &[async_nats::jetstream::stream::Config],
    endpoints: &[Registered<S>],
) -> Result<(), ServeError> {
    for endpoint in endpoints {
        let Endpoint::Consume(consumer) = endpoint.serve.endpoint() else { continue };
        let Some(stream) = streams.iter().find(|s| s.name == consumer.stream.as_ref()) else { continue };
        for filter in &consumer.filters {
            let subjects: Vec<&str> = stream.subjects.iter().map(String::as_str).collect();
            if !crate::endpoint::stream::filter_in_stream(&subjects, filter) {
                return Err(ServeError::new(ServeErrorKind::Stream).context(format!(
                    "consumer `{}` filters `{filter}`, outside stream `{}`'s subjects {:?}: \
                     change the filter or add a subject to the stream",
                    consumer.durable, stream.name, stream.subjects
                )));
            }
        }
    }
    Ok(())
}

/// A service whose subscriptions are live; see [`NatsService::start`].
pub struct Started<S> {
    client: Client,
    state: Arc<S>,
    subscribed: Vec<Box<dyn Ready<S>>>,
    shutdown_timeout: Duration,
    dispatch: Dispatch,
    events: Option<broadcast::Receiver<async_nats::Event>>,
    registry: Arc<discovery::Registry>,
    /// The Services API's subscriptions, for a named service.
    control: Option<discovery::Control>,
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
    /// use nats_otel_runtime::NatsService;
    /// async fn ping() {}
    /// let running = NatsService::new(client).subscribe("ping", ping).start().await?.spawn();
    /// // … the subscriptions are live …
    /// running.stop().await?; // in-flight handlers finish, replies are flushed
    /// # Ok(()) }
    /// ```
    pub fn spawn(self) -> ServiceHandle {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let registry = self.registry.clone();
        let task = tokio::spawn(self.run_until(async move {
            let _ = stopped.await;
        }));
        ServiceHandle { stop: Some(stop), task, registry }
    }

    /// This instance's Services API id (unique per start).
    pub fn id(&self) -> &str {
        &self.registry.id
    }

    /// Serves messages until `signal` completes, then shuts down gracefully (see
    /// [`NatsService::run_until`]).
    pub async fn run_until<F: Future + Send>(self, signal: F) -> Result<(), ServeError> {
        let Started { client, state, subscribed, shutdown_timeout, dispatch, events, registry, control } =
            self;
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        let instruments = Instruments::global();
        instruments.observe_reconnects(&client, &Peer::of(&client));
        let subscriptions: Vec<(String, String)> = subscribed
            .iter()
            .filter_map(|e| Some((e.subscribed_subject()?.to_owned(), e.describe())))
            .collect();
        for (endpoint, (_, stats)) in subscribed.into_iter().zip(&registry.endpoints) {
            let run = Run {
                client: client.clone(),
                state: state.clone(),
                stopped: stopped.clone(),
                instruments: instruments.clone(),
                stats: stats.clone(),
            };
            loops.spawn(endpoint.serve(run).with_subscriber(dispatch.clone()));
        }
        if let Some(control) = control {
            loops.spawn(control.serve(stopped.clone()).with_subscriber(dispatch.clone()));
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

/// The Services API metadata key naming the subject the AsyncAPI document is served on.
pub const ASYNCAPI_METADATA: &str = "nats_otel.asyncapi";

/// The contract of a service with `identity`: its endpoints as they will be
/// served (`prefix` applied to copies, checked as they are before subscribing)
/// and the messages it sends.
fn contract<S>(
    identity: &discovery::Identity,
    endpoints: &[Registered<S>],
    sends: &[Sends],
    prefix: Option<&SubjectPrefix>,
) -> Result<AsyncApi, ServeError> {
    let mut schemas = Schemas::new();
    let received = endpoints
        .iter()
        .map(|registered| {
            let mut endpoint = registered.serve.endpoint();
            if let Some(prefix) = prefix {
                endpoint.apply_prefix(prefix);
            }
            endpoint
                .validate()
                .map_err(|rejected| rejected.into_error(format!("handler `{}`", endpoint.handler_name())))?;
            Ok(Received { endpoint, shape: (registered.shape)(&mut schemas) })
        })
        .collect::<Result<Vec<Received>, ServeError>>()?;
    let sent: Vec<Sent> = sends
        .iter()
        .map(|sends| Sent {
            template: prefix.map_or_else(|| sends.template.to_owned(), |prefix| prefix.apply(sends.template)),
            stream: sends.stream,
            shape: (sends.shape)(&mut schemas),
        })
        .collect();
    let info = crate::asyncapi::Info {
        title: &identity.name,
        version: &identity.version,
        description: identity.description.as_deref(),
    };
    Ok(crate::asyncapi::document(&info, &received, &sent, schemas))
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
            target: TARGET,
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
    let attributes = [opentelemetry::KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS)];
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        match events.recv().await {
            Ok(async_nats::Event::SlowConsumer(sid)) => {
                instruments.dropped.add(1, &attributes);
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|at| now.duration_since(at) >= SLOW_CONSUMER_WARNING_INTERVAL) {
                    last_warning = Some(now);
                    tracing::warn!(target: TARGET, sid,
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
    registry: Arc<discovery::Registry>,
}

impl ServiceHandle {
    /// This instance's Services API id (unique per start): the `<id>` of
    /// `$SRV.STATS.<name>.<id>`.
    pub fn id(&self) -> &str {
        &self.registry.id
    }

    /// Every endpoint with its counts now: what `$SRV.STATS` reports.
    pub fn stats(&self) -> Vec<(EndpointInfo, StatsSnapshot)> {
        self.registry.stats()
    }

    /// Sets every endpoint's counts back to zero.
    pub fn reset_stats(&self) {
        self.registry.reset_stats();
    }

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

/// A stateless endpoint added before [`NatsService::state`].
struct Stateless<E>(E);

impl<S: Send + Sync + 'static> Serve<S> for Stateless<Box<dyn Serve<()>>> {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn apply_prefix(&mut self, prefix: &SubjectPrefix) {
        self.0.apply_prefix(prefix);
    }

    fn endpoint(&self) -> Endpoint {
        self.0.endpoint()
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

    fn info(&self) -> EndpointInfo {
        self.0.info()
    }

    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>> {
        let run = Run {
            client: run.client,
            state: Arc::new(()),
            stopped: run.stopped,
            instruments: run.instruments,
            stats: run.stats,
        };
        self.0.serve(run)
    }
}
