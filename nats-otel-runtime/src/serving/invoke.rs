//! Calling user code for one message, guarded: the handler with its extractors
//! and its output's conversion, and what the service calls around it (the
//! propagator, sampler and span processors on span start and end, `tracing`
//! layers). A panic there costs that message its outcome, span or record, never
//! the subscription.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::handler::reply::{Failure, Outcome, drop_panic_payload};
use crate::handler::{Handler, Incoming, IntoOutcome};
use crate::otel::spans::InContext;

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

/// A call into the SDK around a message (starting or ending its spans, reading
/// what its settle spans need): its result, or the default (the message goes
/// on untraced) when the SDK, or a processor or sampler in it, panics.
pub(crate) fn telemetry_or_default<T: Default>(start: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(AssertUnwindSafe(start)).unwrap_or_else(|panic| {
        drop_panic_payload(panic);
        T::default()
    })
}

/// Runs one message's work, swallowing a panic that escapes it: the last resort
/// for user code called after the handler (a span processor as the span ends).
pub(crate) fn last_resort<F: Future<Output = ()>>(work: F) -> impl Future<Output = ()> {
    AssertUnwindSafe(work).catch_unwind().map(|ended| {
        if let Err(panic) = ended {
            drop_panic_payload(panic);
        }
    })
}
