//! Guards around the user's code that the service calls for every message
//! besides the handler: the propagator, sampler and span processors (on span
//! start and end) and `tracing` layers. A panic there costs that message its
//! span or its record, never the subscription.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// The span context `start` makes, or none (the message is handled untraced)
/// when it panics.
pub(crate) fn span_or_none(start: impl FnOnce() -> opentelemetry::Context) -> opentelemetry::Context {
    std::panic::catch_unwind(AssertUnwindSafe(start)).unwrap_or_else(|panic| {
        crate::reply::drop_panic_payload(panic);
        opentelemetry::Context::new()
    })
}

/// Runs one message's work, swallowing a panic that escapes it: the last resort
/// for user code called after the handler (a span processor as the span ends).
pub(crate) fn last_resort<F: Future<Output = ()>>(work: F) -> impl Future<Output = ()> {
    AssertUnwindSafe(work).catch_unwind().map(|ended| {
        if let Err(panic) = ended {
            crate::reply::drop_panic_payload(panic);
        }
    })
}
