//! How a JetStream message is settled, decided in one place.
//!
//! | handler outcome | delivery | settlement |
//! |---|---|---|
//! | `Ok` | any | **ack** |
//! | `Err`, retryable (the default) | before the last allowed | **nak**, delayed by the error's [`Retry::After`], else the backoff entry for this delivery, else none |
//! | `Err`, retryable | the last allowed (`delivered == max_deliver`) | **dead letter** then term when `dead_letter` is set, else **term** |
//! | `Err` with [`Retry::Never`] (see [`Permanent`]) | any | **dead letter** then term when set, else **term** |
//! | payload rejected by an extractor (poison) | any | **dead letter** then term when set, else **term**: never redelivered |
//! | panic (handler, extractor, reply encoding, error formatting) | as a retryable `Err` | nak with the backoff delay, recorded on the span |
//! | dead letter not stored (no stream, refused, timed out) | any | **nak**, delayed by the backoff entry, else 1 s doubling to 1 min: never termed, never a zero-delay loop; on the span and in `messaging.nats.jetstream.dead_letters` |
//! | no settlement at all on the last allowed delivery (process ended, `Acker` left unsettled) | — | **dead letter** from the server's `MAX_DELIVERIES` advisory, once per consumer |
//!
//! **A message is termed only after its dead letter is confirmed stored**: a
//! PubAck from the dead-letter stream, for the letter's own id (stream, sequence,
//! consumer), so a retry of the same letter is a duplicate and another
//! consumer's letter is not. Letters too large for the server or the stream are
//! stored without their payload, then without the original headers, and say so.
//! On the explicit core route ([`DeadLetterRoute::Core`](crate::DeadLetterRoute))

use std::time::Duration;

use crate::handler::reply::{FailureKind, Outcome};
pub use crate::handler::settlement::{Permanent, Retry, RetryAfter, Settlement};

/// The consumer settings the table needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub(crate) max_deliver: Option<i64>,
    pub(crate) backoff: Vec<Duration>,
    pub(crate) dead_letter: bool,
}

impl Policy {
    /// The table's view of `consumer`.
    pub(crate) fn of(consumer: &crate::endpoint::JetStreamConsumer) -> Self {
        Self {
            max_deliver: consumer.max_deliver,
            backoff: consumer.backoff.clone(),
            dead_letter: consumer.dead_letter.is_some(),
        }
    }

    /// The settlement for `outcome` on delivery number `delivered` (1 for the first).
    pub(crate) fn settle(&self, outcome: &Outcome, delivered: i64) -> Settlement {
        let failure = match outcome {
            Outcome::Success(_) => return Settlement::Ack,
            Outcome::Failure(failure) => failure,
        };
        let give_up = if self.dead_letter { Settlement::DeadLetter } else { Settlement::Term };
        if failure.kind == FailureKind::Rejected || failure.retry == Retry::Never {
            return give_up;
        }
        if self.max_deliver.is_some_and(|max| max > 0 && delivered >= max) {
            return give_up;
        }
        match failure.retry {
            Retry::After(delay) => Settlement::Nak(Some(delay)),
            _ => Settlement::Nak(self.backoff_for(delivered)),
        }
    }

    /// How long the server waits for an ack of delivery `delivered`: with a
    /// backoff schedule, nats-server uses its entry for that delivery instead of
    /// `ack_wait`.
    pub(crate) fn ack_wait_for(&self, delivered: i64, ack_wait: Duration) -> Duration {
        self.backoff_for(delivered).unwrap_or(ack_wait)
    }

    /// The backoff entry for delivery `delivered`: the first after the first
    /// delivery, the last one for every delivery past the schedule.
    pub(crate) fn backoff_for(&self, delivered: i64) -> Option<Duration> {
        let index = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        self.backoff.get(index).or(self.backoff.last()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::reply::{Failure, Reply};

    fn failure(kind: FailureKind, retry: Retry) -> Outcome {
        Outcome::Failure(Failure { kind, code: 500, error_type: "e".into(), message: "m".into(), retry })
    }

    #[test]
    fn the_table() {
        let policy = Policy {
            max_deliver: Some(3),
            backoff: vec![Duration::from_secs(1), Duration::from_secs(10)],
            dead_letter: false,
        };
        let err = failure(FailureKind::Handler, Retry::Backoff);
        assert_eq!(policy.settle(&Outcome::Success(Reply::default()), 1), Settlement::Ack);
        assert_eq!(policy.settle(&err, 1), Settlement::Nak(Some(Duration::from_secs(1))));
        assert_eq!(policy.settle(&err, 2), Settlement::Nak(Some(Duration::from_secs(10))));
        assert_eq!(policy.settle(&err, 3), Settlement::Term, "last allowed delivery");
        let panic = failure(FailureKind::Panicked, Retry::Backoff);
        assert_eq!(policy.settle(&panic, 1), Settlement::Nak(Some(Duration::from_secs(1))));
        let later = failure(FailureKind::Handler, Retry::After(Duration::from_millis(250)));
        assert_eq!(policy.settle(&later, 2), Settlement::Nak(Some(Duration::from_millis(250))));
        assert_eq!(policy.settle(&failure(FailureKind::Handler, Retry::Never), 1), Settlement::Term);
        assert_eq!(policy.settle(&failure(FailureKind::Rejected, Retry::Backoff), 1), Settlement::Term);

        let dlq = Policy { dead_letter: true, ..policy };
        assert_eq!(dlq.settle(&err, 3), Settlement::DeadLetter);
        assert_eq!(dlq.settle(&failure(FailureKind::Rejected, Retry::Backoff), 1), Settlement::DeadLetter);
        assert_eq!(dlq.settle(&err, 1), Settlement::Nak(Some(Duration::from_secs(1))));
    }

    #[test]
    fn without_max_deliver_or_backoff() {
        let policy = Policy::default();
        let err = failure(FailureKind::Handler, Retry::Backoff);
        assert_eq!(policy.settle(&err, 1000), Settlement::Nak(None));
        assert_eq!(policy.backoff_for(0), None);
    }

    #[test]
    fn the_ack_timeout_follows_the_backoff_schedule_when_there_is_one() {
        let thirty = Duration::from_secs(30);
        let plain = Policy::default();
        assert_eq!(plain.ack_wait_for(1, thirty), thirty);
        let backoff =
            Policy { backoff: vec![Duration::from_secs(1), Duration::from_secs(5)], ..Policy::default() };
        assert_eq!(backoff.ack_wait_for(1, thirty), Duration::from_secs(1));
        assert_eq!(backoff.ack_wait_for(2, thirty), Duration::from_secs(5));
        assert_eq!(backoff.ack_wait_for(9, thirty), Duration::from_secs(5));
    }

    #[test]
    fn backoff_past_the_schedule_uses_the_last_entry() {
        let policy =
            Policy { backoff: vec![Duration::from_secs(1), Duration::from_secs(5)], ..Policy::default() };
        assert_eq!(policy.backoff_for(1), Some(Duration::from_secs(1)));
        assert_eq!(policy.backoff_for(7), Some(Duration::from_secs(5)));
    }
}
