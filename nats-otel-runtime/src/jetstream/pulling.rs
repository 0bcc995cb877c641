//! Where a JetStream consumer's work comes from: its pull, the messages held
//! waiting for a handler (kept alive), and the advisories it watches.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::pull::MessagesError;
use async_nats::jetstream::consumer::{PullConsumer, pull};
use futures_util::{FutureExt, StreamExt};

use super::keep_alive::{AckWait, Waiting};
use super::settle::Policy;
use crate::error::{ServeError, ServeErrorKind};
use crate::serving::{Next, Source};

/// One unit of a consumer's work.
// Moved once, into `Step::handle`, and taken apart there. Boxed as it left the
// pull, the delivery cost 252 instructions a message fewer (callgrind, A (4),
// 0.4 %), an allocation more, and no measurable time: nine alternating runs of
// A put the boxed and unboxed builds within each other's spread.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Work {
    /// A delivery to handle and settle.
    Delivery(async_nats::jetstream::Message),
    /// A `MAX_DELIVERIES` advisory: a delivery that never came back, to dead-letter.
    Exhausted(bytes::Bytes),
}

/// A consumer's source of work.
pub(crate) struct Pulling {
    consumer: PullConsumer,
    /// `None` once stopped: dropping the pull unsubscribes it, so the server
    /// sends nothing more while the handlers at work finish.
    messages: Option<pull::Stream>,
    /// Messages asked for per pull.
    batch: usize,
    /// Handlers at once.
    limit: usize,
    /// Messages held at once, running or waiting: the consumer's
    /// `max_ack_pending`, so the server never delivers one that waits unread in
    /// the client, where nothing could keep it alive.
    hold: usize,
    waiting: Waiting,
    beat: Pin<Box<tokio::time::Sleep>>,
    ack_wait: AckWait,
    policy: Policy,
    follow_ack_wait: Pin<Box<dyn Future<Output = Infallible> + Send>>,
    isolation: Isolation,
    reconnections: tokio::time::Interval,
    /// The server's `CONSUMER.DELETED` advisory: a pull consumer whose consumer is
    /// deleted otherwise just stops receiving.
    deleted: Option<async_nats::Subscriber>,
    max_deliveries: Option<async_nats::Subscriber>,
    /// An item `take_ready` read from the pull that was not a message: `next`
    /// handles it first.
    early: Option<Option<Result<Message, MessagesError>>>,
    /// Messages taken straight from the pull since the other sources last had
    /// their turn (see [`STRAIGHT_FROM_THE_PULL`]).
    straight: u8,
    client: async_nats::Client,
    context: String,
}

impl std::fmt::Debug for Pulling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pulling").field("context", &self.context).finish_non_exhaustive()
    }
}

/// How a consumer's pull is set up.
#[derive(Debug)]
pub(crate) struct PullSettings {
    pub(crate) batch: usize,
    pub(crate) limit: usize,
    pub(crate) ack_wait: AckWait,
    pub(crate) policy: Policy,
}

impl Pulling {
    /// Starts pulling from `consumer`; `follow_ack_wait` keeps `settings.ack_wait`
    /// current.
    pub(crate) async fn start(
        consumer: PullConsumer,
        settings: PullSettings,
        follow_ack_wait: impl Future<Output = Infallible> + Send + 'static,
        advisories: (Option<async_nats::Subscriber>, Option<async_nats::Subscriber>),
        client: async_nats::Client,
        context: String,
    ) -> Result<Self, ServeError> {
        let PullSettings { batch, limit, ack_wait, policy } = settings;
        let hold = match usize::try_from(consumer.cached_info().config.max_ack_pending) {
            Ok(max) if max > 0 => max,
            _ => batch.saturating_mul(2),
        }
        .max(limit);
        let messages = pull(&consumer, batch, &context).await?;
        let mut reconnections = tokio::time::interval(RECONNECTION_CHECK);
        reconnections.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (deleted, max_deliveries) = advisories;
        Ok(Self {
            isolation: Isolation::new(&client),
            consumer,
            messages: Some(messages),
            batch,
            limit,
            hold,
            waiting: Waiting::default(),
            beat: Box::pin(tokio::time::sleep(Duration::ZERO)),
            ack_wait,
            policy,
            follow_ack_wait: Box::pin(follow_ack_wait),
            reconnections,
            deleted,
            max_deliveries,
            early: None,
            straight: 0,
            client,
            context,
        })
    }

    /// How long pulls stay one at a time after a reconnection: two of the
    /// longest ack timeouts, so a message lost with the connection comes back
    /// (and is lost alone) within it.
    fn isolation_quiet(&self) -> Duration {
        let longest =
            self.policy.backoff.iter().copied().chain([self.ack_wait.current()]).max().unwrap_or_default();
        longest.saturating_mul(2).max(Duration::from_secs(1))
    }

    /// The heartbeat pace of messages not yet handed to a handler.
    pub(crate) fn waiting_pace(&self) -> Duration {
        self.ack_wait.waiting_pace(&self.policy)
    }

    fn rearm_beat(&mut self) {
        let pace = self.waiting_pace();
        self.beat.as_mut().reset(tokio::time::Instant::now() + pace);
    }
}

impl Source for Pulling {
    type Work = Work;

    async fn next(&mut self, busy: usize) -> Next<Work> {
        loop {
            // What `take_ready` read ahead that was not a message: an error or the end.
            if let Some(item) = self.early.take()
                && let Some(next) = self.on_item(item, busy).await
            {
                return next;
            }
            let Some(messages) = self.messages.as_mut() else {
                return Next::Ended(Ok(()));
            };
            if busy < self.limit
                && let Some(message) = self.waiting.pop(self.ack_wait.waiting_pace(&self.policy)).await
            {
                return Next::Work(Work::Delivery(message));
            }
            let held = busy + self.waiting.len();
            if busy < self.limit && held < self.hold && self.straight < STRAIGHT_FROM_THE_PULL {
                let ready = messages.next().now_or_never();
                self.straight += u8::from(ready.is_some());
                match ready {
                    Some(Some(Ok(message))) => return Next::Work(Work::Delivery(message)),
                    // An error or the end: handled at the top, as `take_ready`'s.
                    Some(other) => {
                        self.early = Some(other);
                        continue;
                    }
                    None => {}
                }
            }
            self.straight = 0;
            let waiting = !self.waiting.is_empty();
            tokio::select! {
                biased;
                () = self.beat.as_mut(), if waiting => {
                    self.waiting.beat().await;
                    self.rearm_beat();
                }
                infallible = self.follow_ack_wait.as_mut() => match infallible {},
                _ = self.reconnections.tick() => {
                    let quiet = self.isolation_quiet();
                    if let Some(size) = self.isolation.check(self.batch, quiet) {
                        // The old pull ends with its stream; the new one asks for `size` at a time.
                        match pull(&self.consumer, size, &self.context).await {
                            Ok(pulling) => self.messages = Some(pulling),
                            Err(e) => return Next::Ended(Err(e)),
                        }
                    }
                }
                Some(_) = next_advisory(&mut self.deleted) => {
                    return Next::Ended(Err(ServeError::new(ServeErrorKind::ConsumerDeleted).context(self.context.clone())));
                }
                Some(advisory) = next_advisory(&mut self.max_deliveries) => {
                    return Next::Work(Work::Exhausted(advisory.payload));
                }
                next = messages.next(), if held < self.hold => match next {
                    // Every message's way: kept out of `on_item`'s future.
                    Some(Ok(message)) if busy < self.limit => return Next::Work(Work::Delivery(message)),
                    other => {
                        if let Some(next) = self.on_item(other, busy).await {
                            return next;
                        }
                    }
                },
            }
        }
    }

    async fn stop(&mut self) {
        // What the client has already received joins the waiting queue, to be
        // given back at close; left in the dropped stream it would wait out its
        // ack timeout on the server.
        if let Some(mut messages) = self.messages.take() {
            while let Some(Some(Ok(message))) = messages.next().now_or_never() {
                self.waiting.push(message);
            }
        }
        // Given back now, not after the handlers at work finish: another
        // instance can take them meanwhile.
        self.waiting.take().release().await;
    }

    async fn close(self) {
        // Give back what no handler took, rather than let it wait for its ack timeout.
        self.waiting.release().await;
    }
}

impl Pulling {
    /// Handles one item of the pull stream: work for a free handler, a message
    /// to hold waiting, an error to log, or the end.
    async fn on_item(
        &mut self,
        item: Option<Result<Message, MessagesError>>,
        busy: usize,
    ) -> Option<Next<Work>> {
        match item {
            Some(Ok(message)) if busy < self.limit => Some(Next::Work(Work::Delivery(message))),
            Some(Ok(message)) => {
                if self.waiting.is_empty() {
                    self.rearm_beat();
                }
                self.waiting.push(message);
                None
            }
            Some(Err(e)) => {
                use async_nats::jetstream::consumer::pull::MessagesErrorKind as Kind;
                if e.kind() == Kind::ConsumerDeleted {
                    let deleted = ServeError::with_source(ServeErrorKind::ConsumerDeleted, e);
                    return Some(Next::Ended(Err(deleted.context(self.context.clone()))));
                }
                // Heartbeats missed while disconnected, a pull refused during a
                // restart: async-nats re-pulls on its own; keep going.
                tracing::warn!(target: crate::otel::TARGET, error = %e, "{}: pull consumer error", self.context);
                None
            }
            // The connection task gone (it says so) or the stream closed.
            None => Some(Next::Ended(Err(crate::serving::connection::subscription_ended(
                &self.client,
                &self.context,
            )
            .await))),
        }
    }

    /// Moves up to `room` messages the client has already received into
    /// `out`, without waiting: a batch takes at once what one pull brought,
    /// rather than a turn of [`Source::next`] each (callgrind, scenario A100).
    /// Only when none wait, so delivery order holds; an item that is not a
    /// message is kept for `next`.
    pub(crate) fn take_ready(&mut self, room: usize, out: &mut Vec<Message>) {
        let Some(messages) = self.messages.as_mut() else { return };
        if !self.waiting.is_empty() || self.early.is_some() {
            return;
        }
        for _ in 0..room {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => out.push(message),
                Some(other) => {
                    self.early = Some(other);
                    return;
                }
                None => return,
            }
        }
    }
}

/// Starts pulling `batch` messages at a time.
async fn pull(consumer: &PullConsumer, batch: usize, context: &str) -> Result<pull::Stream, ServeError> {
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| ServeError::with_source(ServeErrorKind::Consumer, e).context(context.to_owned()))
}

/// The next advisory; pending for ever without a subscription or once it has
/// ended: a subscription that ends with the connection task says nothing about
/// the consumer.
async fn next_advisory(subscriber: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match subscriber {
        Some(subscriber) => match subscriber.next().await {
            Some(advisory) => Some(advisory),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// How many messages the client already holds are taken from the pull, one a
/// turn, before the beat, the advisories, the `ack_wait` follower and the
/// reconnection check are polled again: they wait at most this many messages,
/// and the other turns skip polling them (callgrind, A (4): −800 instructions
/// a message, `next` 2,800 → 2,000).
const STRAIGHT_FROM_THE_PULL: u8 = 16;

/// How often the connection count is read between deliveries.
const RECONNECTION_CHECK: Duration = Duration::from_millis(100);

/// Containment of messages whose bytes break the client: async-nats 0.51 drops
/// the connection on some malformed header blocks
/// (`docs/upstream/async-nats-header-parsing.md`), and every message of the same
/// pull batch still on the wire is lost with the bad one and counts a delivery.
/// After the client reconnects *to the same server* while pulling, messages are
/// pulled one at a time until the connection has held for a quiet period (long
/// enough for the bad message to come back and be lost alone), so only it
/// exhausts its deliveries. A reconnection to another server (a restart, a
/// failover: a new server id) is not this, and keeps the batch.
#[derive(Debug)]
struct Isolation {
    client: async_nats::Client,
    statistics: Arc<async_nats::Statistics>,
    connects: u64,
    server_id: String,
    /// A reconnection seen at this instant, whose server is not known yet:
    /// async-nats counts a connection before it publishes the server's `INFO`.
    reconnected: Option<tokio::time::Instant>,
    until: Option<tokio::time::Instant>,
}

/// How long a new connection's `INFO` may lag behind its count.
const INFO_GRACE: Duration = Duration::from_millis(250);

impl Isolation {
    fn new(client: &async_nats::Client) -> Self {
        let statistics = client.statistics();
        let connects = statistics.connects.load(std::sync::atomic::Ordering::Relaxed);
        let server_id = client.server_info().server_id;
        Self { client: client.clone(), statistics, connects, server_id, reconnected: None, until: None }
    }

    /// The pull size to switch to, if it changes.
    fn check(&mut self, batch: usize, quiet: Duration) -> Option<usize> {
        let now = tokio::time::Instant::now();
        let connects = self.statistics.connects.load(std::sync::atomic::Ordering::Relaxed);
        if connects != self.connects {
            self.connects = connects;
            self.reconnected = Some(now);
        }
        if let Some(at) = self.reconnected {
            let server_id = self.client.server_info().server_id;
            if server_id != self.server_id {
                // Another server: not a message the client choked on.
                self.server_id = server_id;
                self.reconnected = None;
            } else if now.duration_since(at) >= INFO_GRACE {
                self.reconnected = None;
                let entering = self.until.is_none();
                self.until = Some(now + quiet);
                tracing::warn!(target: crate::otel::TARGET,
                    "the connection to the server dropped while pulling; pulling one message at a time for {quiet:?}");
                return (entering && batch > 1).then_some(1);
            }
        }
        match self.until {
            Some(until) if now >= until => {
                self.until = None;
                (batch > 1).then_some(batch)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    /// A consumer whose client holds a backlog, and an advisory published
    /// meanwhile: the advisory is handled after at most two runs of messages
    /// taken straight (one more turn may go to the reconnection check), not
    /// after the backlog.
    #[tokio::test]
    #[cfg(feature = "testing")]
    async fn a_backlog_held_by_the_client_does_not_keep_the_other_sources_waiting() {
        use async_nats::jetstream::{self, consumer, stream};

        use super::*;

        let server = crate::testing::NatsServer::start().unwrap();
        let client = server.connect().await.unwrap();
        let js = jetstream::new(client.clone());
        let config =
            stream::Config { name: "FLOW".into(), subjects: vec!["flow".into()], ..Default::default() };
        let stream = js.create_stream(config).await.unwrap();
        for _ in 0..1_000 {
            js.publish("flow", "x".into()).await.unwrap();
        }
        let consumer: PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("flow".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let advisories = client.subscribe("test.max_deliveries").await.unwrap();
        let (ack_wait, follow) = AckWait::follow(consumer.clone(), Duration::from_secs(30));
        let settings = PullSettings { batch: 500, limit: 64, ack_wait, policy: Policy::default() };
        let advisories = (None, Some(advisories));
        let mut pulling =
            Pulling::start(consumer, settings, follow, advisories, client.clone(), "FLOW".into())
                .await
                .unwrap();

        assert!(matches!(pulling.next(0).await, Next::Work(Work::Delivery(_))));
        // The rest of the first pull's 500 reaches the client.
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.publish("test.max_deliveries", "exhausted".into()).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut deliveries = 0;
        loop {
            match pulling.next(0).await {
                Next::Work(Work::Delivery(_)) => deliveries += 1,
                Next::Work(Work::Exhausted(payload)) => {
                    assert_eq!(payload, "exhausted");
                    break;
                }
                Next::Ended(ended) => panic!("the pull ended: {ended:?}"),
            }
        }
        assert!(
            deliveries <= 2 * usize::from(STRAIGHT_FROM_THE_PULL),
            "the advisory waited behind {deliveries} deliveries"
        );
        // The backlog was there all along: the next delivery is ready at once.
        let next = pulling.next(0).now_or_never();
        assert!(matches!(next, Some(Next::Work(Work::Delivery(_)))), "the client held no backlog");
    }
}
