//! Keeping held JetStream messages alive: every message the service holds,
//! whether its handler runs or it waits for a free one, tells the server it is
//! in progress (`+WPI`) at half the consumer's *current* ack timeout, so a slow
//! handler or a long queue never makes the server deliver it again meanwhile.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use tokio::sync::watch;

use super::settle::Policy;

/// What a heartbeat needs of the delivery it keeps alive (the JetStream
/// settler implements it; this module does not depend on that one).
pub(crate) trait Beating: Sync {
    /// Whether it is settled: then no more beats.
    fn is_settled(&self) -> bool;
    /// Tells the server it is still being worked on (`+WPI`).
    fn in_progress(&self) -> impl Future<Output = ()> + Send + '_;
}

/// How often the consumer's `ack_wait` is read again: another deployment may
/// change it (a rolling update), and the pace must follow within a second.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The consumer's `ack_wait` as the server last reported it.
#[derive(Debug, Clone)]
pub(crate) struct AckWait(watch::Receiver<Duration>);

impl AckWait {
    /// Follows `consumer`'s `ack_wait`, starting from `initial`; the future reads
    /// the consumer every second and never ends (drop it to stop).
    pub(crate) fn follow(
        mut consumer: PullConsumer,
        initial: Duration,
    ) -> (Self, impl Future<Output = Infallible>) {
        let (sender, receiver) = watch::channel(initial);
        let following = async move {
            let mut ticks = tokio::time::interval(FOLLOW_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // A failed read (a restart, a failover) keeps the last value.
                if let Ok(info) = consumer.info().await {
                    let ack_wait = info.config.ack_wait;
                    sender.send_if_modified(|current| std::mem::replace(current, ack_wait) != ack_wait);
                }
            }
        };
        (Self(receiver), following)
    }

    pub(crate) fn current(&self) -> Duration {
        *self.0.borrow()
    }

    /// The pace for messages not yet started, whose delivery count is not
    /// looked at: half the shortest ack timeout the server may apply.
    pub(crate) fn waiting_pace(&self, policy: &Policy) -> Duration {
        let shortest = policy.backoff.iter().copied().chain([self.current()]).min().unwrap_or_default();
        (shortest / 2).max(MIN_PACE)
    }
}

/// Never beat faster than this, whatever the server says (an `ack_wait` of 1 ms).
const MIN_PACE: Duration = Duration::from_millis(10);

/// The heartbeat pace of one delivery: half the ack timeout the server applies
/// to it (the backoff entry for its delivery count, else `ack_wait`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) ack_wait: &'a AckWait,
    pub(crate) delivered: i64,
}

impl Pace<'_> {
    fn every(&self) -> Option<Duration> {
        let ack_wait = self.policy.ack_wait_for(self.delivered, self.ack_wait.current());
        (ack_wait > Duration::ZERO).then(|| (ack_wait / 2).max(MIN_PACE))
    }
}

/// Messages pulled but waiting for a free handler, oldest first, each with the
/// last moment the server knew it alive (its arrival or the last beat).
#[derive(Debug, Default)]
pub(crate) struct Waiting(VecDeque<(Instant, jetstream::Message)>);

impl Waiting {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push(&mut self, message: jetstream::Message) {
        self.0.push_back((Instant::now(), message));
    }

    /// The oldest waiting message, for a handler now free. One that waited
    /// half of `pace` or more since it was last known alive is told in progress
    /// on the way out: its handler's own heartbeats start only a `pace` later.
    /// (Most wait microseconds: a beat each would double the acks sent.)
    ///
    /// Cancel-safe: the serve loop drops a pending `next` when a handler
    /// finishes, so the message leaves the queue only once its beat is sent.
    /// Taken out before, it would be dropped with the future, unanswered until
    /// its ack timeout.
    pub(crate) async fn pop(&mut self, pace: Duration) -> Option<jetstream::Message> {
        let (alive, message) = self.0.front_mut()?;
        if alive.elapsed() >= pace / 2 {
            let _ = message.ack_with(AckKind::Progress).await;
            *alive = Instant::now();
        }
        self.0.pop_front().map(|(_, message)| message)
    }

    /// Tells the server every waiting message is still being worked on.
    pub(crate) async fn beat(&mut self) {
        let now = Instant::now();
        for (alive, message) in &mut self.0 {
            let _ = message.ack_with(AckKind::Progress).await;
            *alive = now;
        }
    }

    /// Gives every waiting message back to the server at once (on shutdown),
    /// rather than after its ack timeout.
    pub(crate) async fn release(self) {
        for (_, message) in self.0 {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }

    /// Moves what is waiting out, leaving the queue empty.
    pub(crate) fn take(&mut self) -> Self {
        Self(std::mem::take(&mut self.0))
    }
}

pin_project_lite::pin_project! {
    /// Runs a handler, telling the server at the delivery's pace that the
    /// message is still being worked on, so it is not redelivered while it runs.
    ///
    /// A hand-written future rather than an `async fn`: that one kept the
    /// handler's future three times over in every message's state.
    pub(crate) struct WithProgress<'a, F, B> {
        #[pin]
        future: F,
        settler: &'a B,
        pace: Pace<'a>,
        // Made at the first `Pending`: most handlers finish on their first poll
        // and need no timer, and the heartbeat's publish stays off every
        // message's future.
        heartbeats: Option<Pin<Box<dyn Future<Output = Infallible> + Send + 'a>>>,
    }
}

pub(crate) fn with_progress<'a, F: Future, B: Beating>(
    future: F,
    settler: &'a B,
    pace: Pace<'a>,
) -> WithProgress<'a, F, B> {
    WithProgress { future, settler, pace, heartbeats: None }
}

impl<F: Future, B: Beating> Future for WithProgress<'_, F, B> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(output);
        }
        let (settler, pace) = (*this.settler, *this.pace);
        let heartbeats = this.heartbeats.get_or_insert_with(|| Box::pin(heartbeats(settler, pace)));
        // Never ready: it beats until the handler is done and this is dropped.
        let _ = heartbeats.as_mut().poll(cx);
        Poll::Pending
    }
}

/// `+WPI` at the delivery's pace until the message is settled (the caller then
/// stops polling); when the consumer's `ack_wait` changes, at once and then at
/// the new pace.
async fn heartbeats<B: Beating>(settler: &B, pace: Pace<'_>) -> Infallible {
    let mut changes = pace.ack_wait.0.clone();
    // False once the consumer is no longer followed (the service is stopping).
    let mut following = true;
    loop {
        let beat = match (pace.every(), following) {
            (Some(every), true) => tokio::select! {
                () = tokio::time::sleep(every) => true,
                changed = changes.changed() => {
                    following = changed.is_ok();
                    following
                }
            },
            (Some(every), false) => {
                tokio::time::sleep(every).await;
                true
            }
            (None, true) => {
                following = changes.changed().await.is_ok();
                following
            }
            (None, false) => return std::future::pending().await,
        };
        if beat && !settler.is_settled() {
            settler.in_progress().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A server that greets one client, answers its first `PING`, then never
    /// reads again: what the client writes backs up, until its command queue
    /// is full and every publish, `+WPI` included, waits.
    async fn stalled_client() -> async_nats::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let info = r#"INFO {"server_id":"stalled","version":"2.11.0","max_payload":1048576,"headers":true,"proto":1}"#;
            socket.write_all(format!("{info}\r\n").as_bytes()).await.unwrap();
            let (mut read, mut seen) = (vec![0; 4096], Vec::new());
            while !seen.windows(6).any(|w| w == b"PING\r\n") {
                let n = socket.read(&mut read).await.unwrap();
                assert!(n > 0, "the client hung up");
                seen.extend_from_slice(&read[..n]);
            }
            socket.write_all(b"PONG\r\n").await.unwrap();
            std::future::pending::<()>().await;
        });
        let client =
            async_nats::ConnectOptions::new().client_capacity(1).connect(address.to_string()).await.unwrap();
        let filler = bytes::Bytes::from(vec![b'x'; 256 * 1024]);
        while tokio::time::timeout(Duration::from_millis(300), client.publish("filler", filler.clone()))
            .await
            .is_ok()
        {}
        client
    }

    #[tokio::test]
    async fn a_pop_dropped_while_its_beat_waits_keeps_the_message() {
        let client = stalled_client().await;
        let message = async_nats::Message {
            subject: "orders".into(),
            reply: Some("$JS.ACK.ORDERS.workers.1.1.1.0.0".into()),
            payload: bytes::Bytes::from_static(b"{}"),
            headers: None,
            status: None,
            description: None,
            length: 2,
        };
        let mut waiting = Waiting::default();
        waiting.push(jetstream::Message { message, context: jetstream::new(client) });
        // A pace of zero: the message waited long enough to be told in progress.
        let popped = tokio::time::timeout(Duration::from_millis(200), waiting.pop(Duration::ZERO)).await;
        assert!(popped.is_err(), "the beat waits for room in the stalled connection");
        assert_eq!(waiting.len(), 1, "the dropped pop left its message waiting, not lost");
    }
}
