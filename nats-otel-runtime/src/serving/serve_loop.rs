//! The serving loop, written once for every endpoint kind.
//!
//! An endpoint kind (a core subscription, a JetStream consumer) says only what
//! differs: where its work comes from and what it tends while it waits
//! ([`Source`]), and what handling one piece of work means ([`Step`]). The loop
//! runs at most `limit` handlers at once on its own task, stops receiving when
//! the service stops, lets every handler finish, and then closes the source.
//!
//! Handlers of one endpoint run concurrently on this task, like
//! `for_each_concurrent`: no task spawn and no cross-thread wake-up per message.

use std::future::Future;

use futures_buffered::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::error::ServeError;

/// What the source gives the loop next.
#[derive(Debug)]
pub(crate) enum Next<W> {
    /// Work for a free handler.
    Work(W),
    /// The source has ended: `Ok` after a stop, the reason otherwise.
    Ended(Result<(), ServeError>),
}

/// Where an endpoint's work comes from.
pub(crate) trait Source: Send {
    /// One unit of work for a handler.
    type Work: Send;

    /// The next unit of work, given how many handlers are busy; meanwhile the
    /// source tends its own affairs (heartbeats, advisories). It must not give
    /// work while `busy` is at the endpoint's limit.
    fn next(&mut self, busy: usize) -> impl Future<Output = Next<Self::Work>> + Send;

    /// Stops receiving: work already received may still come, then `Ended(Ok)`.
    fn stop(&mut self) -> impl Future<Output = ()> + Send;

    /// After the last handler has finished: gives back what was not handled.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// What handling one unit of work means for an endpoint kind.
pub(crate) trait Step: Sync {
    /// As the endpoint's [`Source`] gives it.
    type Work;

    /// Handles one unit of work to the end: answered, settled, recorded. Never
    /// panics out (user code inside is guarded).
    fn handle(&self, work: Self::Work) -> impl Future<Output = ()> + Send + '_;
}

/// Serves `source` with `step` until the source ends or the service stops.
pub(crate) async fn serve<K, S>(
    step: &K,
    mut source: S,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), ServeError>
where
    K: Step,
    S: Source<Work = K::Work>,
{
    // Made once: a fresh `changed()` per turn of the loop would register and
    // unregister a waiter (two lock round trips) for every message.
    let stop = stopped.changed();
    tokio::pin!(stop);
    let mut stopping = false;
    let mut in_flight = FuturesUnordered::new();
    let ended = loop {
        let busy = in_flight.len();
        tokio::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            _ = &mut stop, if !stopping => {
                stopping = true;
                source.stop().await;
            }
            next = source.next(busy) => match next {
                Next::Work(work) => in_flight.push(step.handle(work)),
                Next::Ended(result) => break result,
            },
        }
    };
    // Let every handler finish and settle, then give back the rest.
    while in_flight.next().await.is_some() {}
    source.close().await;
    ended
}
