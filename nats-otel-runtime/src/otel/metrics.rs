//! Metrics, through the global `MeterProvider`: the OpenTelemetry messaging
//! semantic-convention metrics (v1.44) and the seed spec's NATS extras.
//!
//! | metric | instrument | unit | attributes |
//! |---|---|---|---|
//! | `messaging.process.duration` | histogram | `s` | system, `operation.name`=`process`, destination, consumer group, subscription (durable JetStream consumers), server, `error.type` on failure |
//! | `messaging.client.operation.duration` | histogram | `s` | system, `operation.name` (`send`, `request`, `ack`, `nak`, `term`), `operation.type` (`send`, `settle`), destination, server, `error.type` on failure |
//! | `messaging.client.sent.messages` | counter | `{message}` | system, `operation.name`, destination template when known, server, `error.type` on failure |
//! | `messaging.client.consumed.messages` | counter | `{message}` | as `process.duration`, without `error.type` |
//! | `messaging.nats.sent.bytes` | counter | `By` | as `sent.messages` |
//! | `messaging.nats.received.bytes` | counter | `By` | as `consumed.messages` |
//! | `messaging.nats.jetstream.redeliveries` | counter | `{message}` | deliveries with a delivery count above 1 |
//! | `messaging.nats.jetstream.settlements` | counter | `{message}` | plus `messaging.nats.jetstream.ack` = `ack`, `nak`, `term`, `dead_letter` |
//! | `messaging.nats.jetstream.dead_letters` | counter | `{message}` | as `consumed.messages`, plus `messaging.nats.jetstream.dead_letter.outcome` = `stored` or `failed`, `error.type` on failure (`dead_letter_no_stream`, `dead_letter_refused`, `dead_letter_too_large`, …) |
//! | `messaging.nats.dropped.messages` | counter | `{message}` | messages async-nats dropped for a slow consumer (needs [`ClientEvents`](crate::ClientEvents)); a lower bound, as async-nats may drop the events themselves in a burst |
//! | `messaging.nats.handlers.in_flight` | up-down counter | `{handler}` | as `consumed.messages` |
//! | `messaging.nats.jetstream.consumer.pending` | observable gauge | `{message}` | messages the consumer has yet to deliver, per consumer |
//! | `messaging.nats.client.reconnects` | observable counter | `{reconnect}` | `server.address`, `server.port` of the server first connected to |
//!
//! `server.address` and `server.port` are those of the server the client is
//! connected to when the value is recorded: after a failover, the new server's.
//! Histograms use the semantic conventions' bucket boundaries. Destinations are
//! subscription patterns and message templates, never raw subjects, and an
//! ordered consumer's name (new with each instance) is left out, so cardinality
//! stays bounded. With no `MeterProvider` installed every instrument is a no-op.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Counter, Histogram, Meter};

use crate::endpoint::discovery::EndpointStats;
use crate::handler::Settlement;
use crate::handler::reply::Failure;
use crate::otel::peer::{Connection, Current, Peer, PerConnection};
use crate::otel::semconv;
use crate::otel::spans::Outbound;

/// The semantic conventions' advisory bucket boundaries for durations, in seconds.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The instrumentation scope name of every nats-otel metric.
pub const METER_NAME: &str = "nats-otel";

/// Values reported by an observable instrument: one per endpoint, with its attributes.
type Observed = Arc<Mutex<Vec<(Vec<KeyValue>, Arc<AtomicI64>)>>>;

/// Instruments with their attribute set fixed (per endpoint and connection).
///
/// With the `bound-metrics` feature (on with `telemetry` and `testing`) they
/// are the API's bound instruments: a record skips hashing the attributes (SDK
/// bench: ~60 ns unbound, ~7 ns bound). Binding works only where the SDK has
/// its own `experimental_metrics_bound_instruments` feature (else every record
/// is dropped), which only a dependency on the SDK can turn on: so the feature
/// brings the SDK in, and without it the attributes go with each record.
#[cfg(feature = "bound-metrics")]
mod fixed {
    use opentelemetry::KeyValue;

    pub(super) type Counter = opentelemetry::metrics::BoundCounter<u64>;
    pub(super) type Histogram = opentelemetry::metrics::BoundHistogram<f64>;

    pub(super) fn counter(
        instrument: &opentelemetry::metrics::Counter<u64>,
        attributes: &[KeyValue],
    ) -> Counter {
        instrument.bind(attributes)
    }

    pub(super) fn histogram(
        instrument: &opentelemetry::metrics::Histogram<f64>,
        attributes: &[KeyValue],
    ) -> Histogram {
        instrument.bind(attributes)
    }
}

/// See the other `fixed`: here the attributes go with each record.
#[cfg(not(feature = "bound-metrics"))]
mod fixed {
    use opentelemetry::KeyValue;

    #[derive(Debug)]
    pub(super) struct Counter(opentelemetry::metrics::Counter<u64>, Box<[KeyValue]>);

    impl Counter {
        pub(super) fn add(&self, value: u64) {
            self.0.add(value, &self.1);
        }
    }

    #[derive(Debug)]
    pub(super) struct Histogram(opentelemetry::metrics::Histogram<f64>, Box<[KeyValue]>);

    impl Histogram {
        pub(super) fn record(&self, value: f64) {
            self.0.record(value, &self.1);
        }
    }

    pub(super) fn counter(
        instrument: &opentelemetry::metrics::Counter<u64>,
        attributes: &[KeyValue],
    ) -> Counter {
        Counter(instrument.clone(), attributes.into())
    }

    pub(super) fn histogram(
        instrument: &opentelemetry::metrics::Histogram<f64>,
        attributes: &[KeyValue],
    ) -> Histogram {
        Histogram(instrument.clone(), attributes.into())
    }
}

/// Every instrument, created once per service or publisher.
#[derive(Debug)]
pub(crate) struct Instruments {
    meter: Meter,
    process_duration: Histogram<f64>,
    operation_duration: Histogram<f64>,
    sent: Counter<u64>,
    consumed: Counter<u64>,
    sent_bytes: Counter<u64>,
    received_bytes: Counter<u64>,
    redeliveries: Counter<u64>,
    settlements: Counter<u64>,
    dead_letters: Counter<u64>,
    pub(crate) dropped: Counter<u64>,
    in_flight: Observed,
    in_flight_counter: std::sync::OnceLock<()>,
    pending: Observed,
    pending_gauge: std::sync::OnceLock<()>,
}

impl Instruments {
    /// Instruments from the global meter provider as it is now.
    pub(crate) fn global() -> Arc<Self> {
        let meter = opentelemetry::global::meter(METER_NAME);
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        let count = |name: &'static str, unit: &'static str, description: &'static str| {
            meter.u64_counter(name).with_unit(unit).with_description(description).build()
        };
        Arc::new(Self {
            process_duration: seconds("messaging.process.duration", "Duration of processing operation"),
            operation_duration: seconds(
                "messaging.client.operation.duration",
                "Duration of messaging operation initiated by a producer or consumer client",
            ),
            sent: count(
                "messaging.client.sent.messages",
                "{message}",
                "Number of messages producer attempted to send to the broker",
            ),
            consumed: count(
                "messaging.client.consumed.messages",
                "{message}",
                "Number of messages that were delivered to the application",
            ),
            sent_bytes: count("messaging.nats.sent.bytes", "By", "Payload bytes published"),
            received_bytes: count("messaging.nats.received.bytes", "By", "Payload bytes received"),
            redeliveries: count(
                "messaging.nats.jetstream.redeliveries",
                "{message}",
                "JetStream deliveries of a message delivered before",
            ),
            settlements: count(
                "messaging.nats.jetstream.settlements",
                "{message}",
                "JetStream settlements by outcome",
            ),
            dead_letters: count(
                "messaging.nats.jetstream.dead_letters",
                "{message}",
                "Dead letters written, stored or failed",
            ),
            dropped: count(
                "messaging.nats.dropped.messages",
                "{message}",
                "Messages dropped by the client because a subscription could not keep up",
            ),
            in_flight: Observed::default(),
            in_flight_counter: std::sync::OnceLock::new(),
            pending: Observed::default(),
            pending_gauge: std::sync::OnceLock::new(),
            meter,
        })
    }

    /// Registers the in-flight handlers counter, once, when a first endpoint needs it.
    fn register_in_flight_counter(&self) {
        self.in_flight_counter.get_or_init(|| {
            let _counter = self
                .meter
                .i64_observable_up_down_counter("messaging.nats.handlers.in_flight")
                .with_unit("{handler}")
                .with_description("Handlers running")
                .with_callback(report_each(&self.in_flight))
                .build();
        });
    }

    /// Registers the consumer-backlog gauge, once, when a first consumer needs it.
    fn register_pending_gauge(&self) {
        self.pending_gauge.get_or_init(|| {
            let _gauge = self
                .meter
                .i64_observable_gauge("messaging.nats.jetstream.consumer.pending")
                .with_unit("{message}")
                .with_description("Messages the consumer has yet to deliver, as of its last delivery")
                .with_callback(report_each(&self.pending))
                .build();
        });
    }

    /// Reports the client's reconnects (connects after the first), labelled with
    /// the server it first connected to.
    pub(crate) fn observe_reconnects(&self, client: &async_nats::Client, peer: &Peer) {
        let statistics = client.statistics();
        let attributes = server_attributes(&peer.current());
        let _counter = self
            .meter
            .u64_observable_counter("messaging.nats.client.reconnects")
            .with_unit("{reconnect}")
            .with_description("Reconnections of the client to the server")
            .with_callback(move |observer| {
                let connects = statistics.connects.load(Ordering::Relaxed);
                observer.observe(connects.saturating_sub(1), &attributes);
            })
            .build();
    }

    /// Labels an endpoint's `value` in an observable instrument with `attributes`.
    fn observe(registry: &Observed, value: &Arc<AtomicI64>, attributes: &[KeyValue]) {
        if let Ok(mut values) = registry.lock() {
            match values.iter_mut().find(|(_, v)| Arc::ptr_eq(v, value)) {
                Some((labels, _)) => *labels = attributes.to_vec(),
                None => values.push((attributes.to_vec(), value.clone())),
            }
        }
    }
}

/// An observable instrument's callback: reports each endpoint's current value.
fn report_each(values: &Observed) -> impl Fn(&dyn AsyncInstrument<i64>) + Send + Sync + 'static {
    let values = values.clone();
    move |observer| {
        if let Ok(values) = values.lock() {
            for (attributes, value) in values.iter() {
                observer.observe(value.load(Ordering::Relaxed), attributes);
            }
        }
    }
}

/// The system and the server a connection is to.
fn server_attributes(connection: &Connection) -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS)];
    if let Some(address) = connection.address() {
        attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, address));
    }
    if let Some(port) = connection.port() {
        attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
    }
    attributes
}

fn with(mut attributes: Vec<KeyValue>, extra: impl IntoIterator<Item = KeyValue>) -> Vec<KeyValue> {
    attributes.extend(extra);
    attributes
}

fn with_error(attributes: &[KeyValue], error_type: Option<&str>) -> Option<Vec<KeyValue>> {
    error_type.map(|e| with(attributes.to_vec(), [KeyValue::new(semconv::ERROR_TYPE, e.to_owned())]))
}

/// Instruments bound to attribute sets that name the client's server, bound
/// again when the client has reconnected (to another server, after a failover),
/// so metrics follow the connection as spans do.
#[derive(Debug)]
struct Bound<T> {
    peer: Peer,
    instruments: PerConnection<T>,
}

impl<T> Bound<T> {
    /// Binds with `bind`, given the server's attributes.
    fn new(peer: Peer, bind: impl FnOnce(&[KeyValue]) -> T) -> Self {
        let connection = peer.current();
        let instruments = PerConnection::new(connection.connects(), bind(&server_attributes(&connection)));
        drop(connection);
        Self { peer, instruments }
    }

    /// The instruments for the connection the client has now; `bind` binds
    /// them again when it has reconnected.
    fn get(&self, bind: impl FnOnce(&[KeyValue]) -> T) -> Current<'_, T> {
        // Bound for a connection whose INFO was read: if the client is still
        // on it, the instruments are those.
        if let Some(first) = self.instruments.get_first(self.peer.connects()) {
            return first;
        }
        let connection = self.peer.current();
        self.instruments.get(connection.connects(), |_| Some(bind(&server_attributes(&connection))))
    }
}

/// What a consuming endpoint is: destination and group, for its attributes.
#[derive(Debug)]
pub(crate) struct EndpointIdentity<'a> {
    /// The subscription subject or filter (a pattern when it has wildcards).
    pub(crate) destination: &'a str,
    /// Queue group or durable.
    pub(crate) group: Option<&'a str>,
    /// Durable, for JetStream.
    pub(crate) subscription: Option<&'a str>,
}

impl EndpointIdentity<'_> {
    /// The attributes that follow the server's.
    fn attributes(&self) -> Vec<KeyValue> {
        let destination_key = if crate::endpoint::has_wildcards(self.destination) {
            semconv::MESSAGING_DESTINATION_TEMPLATE
        } else {
            semconv::MESSAGING_DESTINATION_NAME
        };
        let mut attributes = vec![KeyValue::new(destination_key, self.destination.to_owned())];
        if let Some(group) = self.group {
            attributes.push(KeyValue::new(semconv::MESSAGING_CONSUMER_GROUP_NAME, group.to_owned()));
        }
        if let Some(subscription) = self.subscription {
            attributes.push(KeyValue::new(
                opentelemetry_semantic_conventions::attribute::MESSAGING_DESTINATION_SUBSCRIPTION_NAME,
                subscription.to_owned(),
            ));
        }
        attributes
    }
}

/// Metrics of one consuming endpoint: its attribute sets are fixed for a
/// connection, so the instruments are bound to them and each message records
/// without hashing.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    instruments: Arc<Instruments>,
    /// Destination, group, subscription.
    endpoint: Vec<KeyValue>,
    bound: Bound<EndpointInstruments>,
    in_flight: Arc<AtomicI64>,
    pending: Option<Arc<AtomicI64>>,
    /// The Services API's counts, kept by the same record.
    stats: Arc<EndpointStats>,
}

#[derive(Debug)]
struct EndpointInstruments {
    /// The server's and the endpoint's attributes.
    base: Vec<KeyValue>,
    process: Vec<KeyValue>,
    consumed: fixed::Counter,
    received_bytes: fixed::Counter,
    processed: fixed::Histogram,
    /// For JetStream consumers only: a bound instrument is exported, at zero,
    /// as soon as it is bound.
    jetstream: Option<JetStreamInstruments>,
}

#[derive(Debug)]
struct JetStreamInstruments {
    redeliveries: fixed::Counter,
    ack: SettleInstruments,
    nak: SettleInstruments,
    /// Terms, dead-lettered ones included (a dead letter ends in a term).
    term: SettleInstruments,
    /// `settlements` with `messaging.nats.jetstream.ack` = `dead_letter`.
    dead_lettered: fixed::Counter,
}

/// The instruments of one settle operation: `ack`, `nak` or `term`.
#[derive(Debug)]
struct SettleInstruments {
    /// The operation's attributes, for a failed settlement's `error.type` set.
    attributes: Vec<KeyValue>,
    duration: fixed::Histogram,
    /// `settlements` with `messaging.nats.jetstream.ack` = the operation.
    settled: fixed::Counter,
}

impl EndpointInstruments {
    fn bind(instruments: &Instruments, server: &[KeyValue], endpoint: &[KeyValue], jetstream: bool) -> Self {
        let base = with(server.to_vec(), endpoint.iter().cloned());
        let process = with(base.clone(), [KeyValue::new(semconv::MESSAGING_OPERATION_NAME, "process")]);
        Self {
            consumed: fixed::counter(&instruments.consumed, &process),
            received_bytes: fixed::counter(&instruments.received_bytes, &process),
            processed: fixed::histogram(&instruments.process_duration, &process),
            jetstream: jetstream.then(|| JetStreamInstruments::bind(instruments, &base, &process)),
            process,
            base,
        }
    }
}

impl JetStreamInstruments {
    fn bind(instruments: &Instruments, base: &[KeyValue], process: &[KeyValue]) -> Self {
        let outcome = |outcome: &'static str| {
            fixed::counter(
                &instruments.settlements,
                &with(process.to_vec(), [KeyValue::new("messaging.nats.jetstream.ack", outcome)]),
            )
        };
        let operation = |name: &'static str| {
            let attributes = with(
                base.to_vec(),
                [
                    KeyValue::new(semconv::MESSAGING_OPERATION_NAME, name),
                    KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "settle"),
                ],
            );
            SettleInstruments {
                duration: fixed::histogram(&instruments.operation_duration, &attributes),
                settled: outcome(name),
                attributes,
            }
        };
        Self {
            redeliveries: fixed::counter(&instruments.redeliveries, process),
            ack: operation("ack"),
            nak: operation("nak"),
            term: operation("term"),
            dead_lettered: outcome("dead_letter"),
        }
    }

    /// The operation that sends `settlement`.
    fn operation(&self, settlement: Settlement) -> &SettleInstruments {
        match settlement {
            Settlement::Ack => &self.ack,
            Settlement::Nak(_) => &self.nak,
            Settlement::Term | Settlement::DeadLetter => &self.term,
        }
    }
}

impl EndpointMetrics {
    pub(crate) fn new(
        instruments: Arc<Instruments>,
        peer: Peer,
        endpoint: EndpointIdentity<'_>,
        jetstream: bool,
        stats: Arc<EndpointStats>,
    ) -> Self {
        let endpoint = endpoint.attributes();
        let bound =
            Bound::new(peer, |server| EndpointInstruments::bind(&instruments, server, &endpoint, jetstream));
        let base = &bound.instruments.first().base;
        instruments.register_in_flight_counter();
        let in_flight = Arc::new(AtomicI64::new(0));
        Instruments::observe(&instruments.in_flight, &in_flight, base);
        let pending = jetstream.then(|| {
            instruments.register_pending_gauge();
            let pending = Arc::new(AtomicI64::new(0));
            Instruments::observe(&instruments.pending, &pending, base);
            pending
        });
        Self { instruments, endpoint, bound, in_flight, pending, stats }
    }

    /// The instruments for the client's connection now; on a new one, the
    /// observable values are labelled again too.
    fn bound(&self) -> Current<'_, EndpointInstruments> {
        self.bound.get(|server| {
            let bound =
                EndpointInstruments::bind(&self.instruments, server, &self.endpoint, self.pending.is_some());
            Instruments::observe(&self.instruments.in_flight, &self.in_flight, &bound.base);
            if let Some(pending) = &self.pending {
                Instruments::observe(&self.instruments.pending, pending, &bound.base);
            }
            bound
        })
    }

    /// A message was delivered to this endpoint.
    pub(crate) fn received(&self, body_size: usize) {
        let bound = self.bound();
        bound.consumed.add(1);
        bound.received_bytes.add(body_size as u64);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// JetStream delivery details: redelivery and the consumer's backlog.
    pub(crate) fn delivery(&self, delivered: i64, pending: u64) {
        if delivered > 1
            && let Some(jetstream) = &self.bound().jetstream
        {
            jetstream.redeliveries.add(1);
        }
        if let Some(gauge) = &self.pending {
            gauge.store(i64::try_from(pending).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    /// Processing ended after `elapsed`, with `failure` if it failed.
    pub(crate) fn processed(&self, elapsed: Duration, failure: Option<&Failure>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.record(elapsed, failure);
        let error_type = failure.map(Failure::error_type);
        let bound = self.bound();
        match with_error(&bound.process, error_type) {
            Some(failed) => self.instruments.process_duration.record(elapsed.as_secs_f64(), &failed),
            None => bound.processed.record(elapsed.as_secs_f64()),
        }
    }

    /// A batch's processing ended after `elapsed`, each message with its
    /// `failures` entry. The Services API counts each message; the duration
    /// is of one process operation (semconv), failed with the first failure's
    /// `error.type` when a message failed.
    pub(crate) fn processed_batch<'f>(
        &self,
        elapsed: Duration,
        failures: impl ExactSizeIterator<Item = Option<&'f Failure>>,
    ) {
        let count = failures.len();
        self.in_flight.fetch_sub(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
        let mut first = None;
        for failure in failures {
            self.stats.record(elapsed, failure);
            first = first.or(failure);
        }
        let bound = self.bound();
        match with_error(&bound.process, first.map(Failure::error_type)) {
            Some(failed) => self.instruments.process_duration.record(elapsed.as_secs_f64(), &failed),
            None => bound.processed.record(elapsed.as_secs_f64()),
        }
    }

    /// A dead letter was stored, or failed with `error_type`. Rare: not bound.
    pub(crate) fn dead_letter(&self, error_type: Option<&str>) {
        let bound = self.bound();
        let outcome = if error_type.is_some() { "failed" } else { "stored" };
        let mut attributes = with(
            bound.base.clone(),
            [KeyValue::new("messaging.nats.jetstream.dead_letter.outcome", outcome)],
        );
        if let Some(error_type) = error_type {
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
        }
        self.instruments.dead_letters.add(1, &attributes);
    }

    /// A settlement was sent in `elapsed`.
    pub(crate) fn settled(&self, settlement: Settlement, elapsed: Duration, error_type: Option<&str>) {
        let bound = self.bound();
        let Some(jetstream) = &bound.jetstream else {
            return; // Core messages are not settled.
        };
        let operation = jetstream.operation(settlement);
        match settlement {
            Settlement::DeadLetter => jetstream.dead_lettered.add(1),
            _ => operation.settled.add(1),
        }
        match with_error(&operation.attributes, error_type) {
            Some(failed) => self.instruments.operation_duration.record(elapsed.as_secs_f64(), &failed),
            None => operation.duration.record(elapsed.as_secs_f64()),
        }
    }
}

/// Metrics of a publisher; instruments bound to the common attribute sets.
#[derive(Debug)]
pub(crate) struct SendMetrics {
    instruments: Arc<Instruments>,
    bound: Bound<SendInstruments>,
}

/// A publisher's instruments: one set for publishes, one for requests.
#[derive(Debug)]
struct SendInstruments {
    send: OperationInstruments,
    request: OperationInstruments,
}

/// The instruments of one outbound operation, bound to its attributes.
#[derive(Debug)]
struct OperationInstruments {
    /// For a record with more attributes (template, `error.type`).
    attributes: Vec<KeyValue>,
    sent: fixed::Counter,
    sent_bytes: fixed::Counter,
    duration: fixed::Histogram,
}

impl SendInstruments {
    fn bind(instruments: &Instruments, server: &[KeyValue]) -> Self {
        let operation = |name: &'static str| {
            let attributes = with(
                server.to_vec(),
                [
                    KeyValue::new(semconv::MESSAGING_OPERATION_NAME, name),
                    KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "send"),
                ],
            );
            OperationInstruments {
                sent: fixed::counter(&instruments.sent, &attributes),
                sent_bytes: fixed::counter(&instruments.sent_bytes, &attributes),
                duration: fixed::histogram(&instruments.operation_duration, &attributes),
                attributes,
            }
        };
        Self { send: operation("send"), request: operation("request") }
    }
}

impl SendMetrics {
    pub(crate) fn new(instruments: Arc<Instruments>, peer: Peer) -> Self {
        let bound = Bound::new(peer, |server| SendInstruments::bind(&instruments, server));
        Self { instruments, bound }
    }

    /// A publish or request of `body_size` bytes took `elapsed`.
    ///
    /// `template` is the subject template when the message type declares one; raw
    /// subjects are never recorded, as they may carry ids.
    pub(crate) fn sent(
        &self,
        kind: Outbound,
        template: Option<&str>,
        body_size: usize,
        elapsed: Duration,
        error_type: Option<&str>,
    ) {
        let bound = self.bound.get(|server| SendInstruments::bind(&self.instruments, server));
        let operation = match kind {
            Outbound::Send => &bound.send,
            Outbound::Request => &bound.request,
        };
        if template.is_none() && error_type.is_none() {
            operation.sent.add(1);
            operation.sent_bytes.add(body_size as u64);
            operation.duration.record(elapsed.as_secs_f64());
            return;
        }
        let attributes = operation.with(template, error_type);
        let i = &self.instruments;
        i.sent.add(1, &attributes);
        i.sent_bytes.add(body_size as u64, &attributes);
        i.operation_duration.record(elapsed.as_secs_f64(), &attributes);
    }

    /// A batch publish took `elapsed`: each message is counted (with its
    /// template, and its `error.type` when it failed), the operation's duration
    /// recorded once (with `error_type` when any message failed).
    pub(crate) fn sent_batch(
        &self,
        messages: &[SentMessage<'_>],
        elapsed: Duration,
        error_type: Option<&str>,
    ) {
        let bound = self.bound.get(|server| SendInstruments::bind(&self.instruments, server));
        let operation = &bound.send;
        let i = &self.instruments;
        for message in messages {
            if message.template.is_none() && message.error_type.is_none() {
                operation.sent.add(1);
                operation.sent_bytes.add(message.body_size as u64);
            } else {
                let attributes = operation.with(message.template, message.error_type);
                i.sent.add(1, &attributes);
                i.sent_bytes.add(message.body_size as u64, &attributes);
            }
        }
        match error_type {
            None => operation.duration.record(elapsed.as_secs_f64()),
            Some(_) => i.operation_duration.record(elapsed.as_secs_f64(), &operation.with(None, error_type)),
        }
    }
}

/// One message of a batch publish, as its metrics record it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SentMessage<'a> {
    pub(crate) body_size: usize,
    pub(crate) template: Option<&'a str>,
    pub(crate) error_type: Option<&'static str>,
}

impl OperationInstruments {
    /// The operation's attributes with a template and an `error.type`.
    fn with(&self, template: Option<&str>, error_type: Option<&str>) -> Vec<KeyValue> {
        let mut attributes = self.attributes.clone();
        if let Some(template) = template {
            attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_TEMPLATE, template.to_owned()));
        }
        if let Some(error_type) = error_type {
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
        }
        attributes
    }
}
