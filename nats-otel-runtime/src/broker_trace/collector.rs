//! The collector: subscribes to a trace destination and records each server's
//! report as a span in the message's trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::Client;
use futures_util::StreamExt;
use opentelemetry::InstrumentationScope;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider;
use tokio::sync::oneshot;

use super::journeys::Journeys;
use super::report::ServerReport;
use crate::error::{BrokerTraceError, BrokerTraceErrorKind};
use crate::otel::TARGET;
use crate::otel::tracer::SCOPE_NAME;

/// The queue group collectors share by default: each report is recorded once,
/// however many instances collect.
pub const DEFAULT_QUEUE_GROUP: &str = "nats-otel.broker-trace";

/// How long a report waits for the report of the server that forwarded the
/// message to it, by default.
pub const DEFAULT_HOP_WAIT: Duration = Duration::from_millis(500);

/// Records nats-server's message-trace reports sent to a subject as spans.
///
/// Point the reports at it either way:
/// - publishers ask for them: [`Publisher::broker_tracing`](crate::Publisher::broker_tracing)
///   with the same subject;
/// - or the account asks for every sampled `traceparent`
///   (`msg_trace { dest: "traces.broker" }`, see [the module](super)).
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use nats_otel_runtime::broker_trace::Collector;
/// let collecting = Collector::new(client, "traces.broker").start().await?;
/// // … publishes traced by the broker …
/// let counts = collecting.stop().await;
/// println!("{} server spans", counts.spans);
/// # Ok(()) }
/// ```
pub struct Collector {
    client: Client,
    subject: String,
    queue_group: Option<String>,
    hop_wait: Duration,
    tracer: Option<BoxedTracer>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("subject", &self.subject)
            .field("queue_group", &self.queue_group)
            .field("hop_wait", &self.hop_wait)
            .finish_non_exhaustive()
    }
}

/// What a collector has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CollectorCounts {
    /// Reports received.
    pub reports: u64,
    /// Spans recorded.
    pub spans: u64,
    /// Reports that were not a server's report (not JSON, wrong shape).
    pub malformed: u64,
    /// Reports without a valid `traceparent`: they join no trace.
    pub untraceable: u64,
}

#[derive(Debug, Default)]
struct Counters {
    reports: AtomicU64,
    spans: AtomicU64,
    malformed: AtomicU64,
    untraceable: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CollectorCounts {
        CollectorCounts {
            reports: self.reports.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            untraceable: self.untraceable.load(Ordering::Relaxed),
        }
    }
}

impl Collector {
    /// Collects the reports sent to `subject`, in the queue group
    /// [`DEFAULT_QUEUE_GROUP`], recording spans with the global tracer provider.
    pub fn new(client: Client, subject: impl Into<String>) -> Self {
        Self {
            client,
            subject: subject.into(),
            queue_group: Some(DEFAULT_QUEUE_GROUP.to_owned()),
            hop_wait: DEFAULT_HOP_WAIT,
            tracer: None,
        }
    }

    /// Another queue group, or none (`None`: every collector records every
    /// report). A message's reports are nested only when one collector gets
    /// them all; with several in a group, a report whose forwarder's report went
    /// elsewhere is recorded under the publisher's span after the hop wait.
    #[must_use]
    pub fn queue_group(mut self, group: Option<&str>) -> Self {
        self.queue_group = group.map(str::to_owned);
        self
    }

    /// How long a report waits for its forwarder's (default [`DEFAULT_HOP_WAIT`]).
    #[must_use]
    pub fn hop_wait(mut self, wait: Duration) -> Self {
        self.hop_wait = wait;
        self
    }

    /// Records the spans with `provider` instead of the global one: give it a
    /// resource naming the broker (`service.name=nats-server`) and backends
    /// show the hops as the broker's.
    #[must_use]
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(provider.tracer_with_scope(scope()))));
        self
    }

    /// Subscribes (checked with the server) and collects in the background
    /// until the handle stops it.
    pub async fn start(self) -> Result<CollectorHandle, BrokerTraceError> {
        nats_otel_rules::validate(&self.subject, nats_otel_rules::Usage::Subscribe).map_err(|e| {
            BrokerTraceError::with_source(BrokerTraceErrorKind::InvalidSubject, e)
                .context(self.subject.clone())
        })?;
        let subscribed = match &self.queue_group {
            Some(group) => self.client.queue_subscribe(self.subject.clone(), group.clone()).await,
            None => self.client.subscribe(self.subject.clone()).await,
        };
        let subscriber = subscribed.map_err(|e| {
            BrokerTraceError::with_source(BrokerTraceErrorKind::Subscribe, e).context(self.subject.clone())
        })?;
        self.client
            .flush()
            .await
            .map_err(|e| BrokerTraceError::with_source(BrokerTraceErrorKind::Subscribe, e))?;
        let tracer = self
            .tracer
            .unwrap_or_else(|| opentelemetry::global::tracer_provider().tracer_with_scope(scope()));
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let journeys = Journeys::new(tracer, self.hop_wait);
        let task = tokio::spawn(collect(subscriber, journeys, counters.clone(), stopped));
        Ok(CollectorHandle { stop: Some(stop), task, counters })
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME).with_version(env!("CARGO_PKG_VERSION")).build()
}

/// A running collector; see [`Collector::start`].
#[derive(Debug)]
pub struct CollectorHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

impl CollectorHandle {
    /// What it has done so far.
    pub fn counts(&self) -> CollectorCounts {
        self.counters.snapshot()
    }

    /// Stops collecting once the subject has been quiet for 100 ms: the
    /// reports received are recorded (those still waiting for their
    /// forwarder's, under the nearest recorded ancestor), then the counts are
    /// returned.
    pub async fn stop(mut self) -> CollectorCounts {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        if let Err(e) = task.await {
            tracing::warn!(target: TARGET, error = %e, "the broker trace collector ended abnormally");
        }
        self.counters.snapshot()
    }
}

impl Drop for CollectorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How often reports that waited too long are recorded.
const TICK: Duration = Duration::from_millis(100);

/// At most one warning about malformed reports per interval.
const MALFORMED_WARNING_INTERVAL: Duration = Duration::from_secs(10);

async fn collect(
    mut subscriber: async_nats::Subscriber,
    journeys: Journeys,
    counters: Arc<Counters>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut collecting = Collecting { journeys, counters, last_warning: None };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            message = subscriber.next() => match message {
                Some(message) => collecting.receive(&message),
                None => {
                    tracing::warn!(target: TARGET, "the broker trace subscription ended");
                    break;
                }
            },
            _ = tick.tick() => {
                let recorded = collecting.journeys.tick(Instant::now());
                collecting.counted_spans(recorded);
            }
        }
    }
    // Reports still on their way (servers report within milliseconds of a
    // publish) are recorded too: until the subject is quiet, then what is
    // queued after unsubscribing.
    while let Ok(Some(message)) = tokio::time::timeout(TICK, subscriber.next()).await {
        collecting.receive(&message);
    }
    let _ = subscriber.unsubscribe().await;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(10), subscriber.next()).await {
        collecting.receive(&message);
    }
    let recorded = collecting.journeys.finish();
    collecting.counted_spans(recorded);
}

/// The collector's state while it runs.
struct Collecting {
    journeys: Journeys,
    counters: Arc<Counters>,
    last_warning: Option<Instant>,
}

impl Collecting {
    fn receive(&mut self, message: &async_nats::Message) {
        self.counters.reports.fetch_add(1, Ordering::Relaxed);
        let report = match serde_json::from_slice::<ServerReport>(&message.payload) {
            Ok(report) => report,
            Err(e) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                if self.last_warning.is_none_or(|at| now.duration_since(at) >= MALFORMED_WARNING_INTERVAL) {
                    self.last_warning = Some(now);
                    tracing::warn!(target: TARGET, subject = %message.subject, error = %e,
                        "a message on the broker trace subject is not a nats-server trace report; skipped");
                }
                return;
            }
        };
        match self.journeys.add(report, Instant::now()) {
            Ok(recorded) => self.counted_spans(recorded),
            Err(_) => {
                self.counters.untraceable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: TARGET, "a broker trace report without a traceparent joins no trace; skipped");
            }
        }
    }

    fn counted_spans(&self, recorded: usize) {
        self.counters.spans.fetch_add(recorded as u64, Ordering::Relaxed);
    }
}
