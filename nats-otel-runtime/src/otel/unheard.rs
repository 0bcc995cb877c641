//! What nats-otel says when nobody listens: an application that installed no
//! `tracing` subscriber still learns that messages are failing or being
//! dropped, on standard error, at most one line per interval.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one line per interval: a stream of bad messages must not flood stderr.
const INTERVAL: Duration = Duration::from_secs(10);

/// Whether no `tracing` subscriber hears nats-otel's log lines here.
pub(crate) fn unheard() -> bool {
    tracing::dispatcher::get_default(|dispatch| dispatch.is::<tracing::subscriber::NoSubscriber>())
}

/// Writes `line()` to stderr when nobody hears nats-otel's log lines, at most
/// once per interval (counting the lines left out).
pub(crate) fn report(line: impl FnOnce() -> String) {
    if !unheard() {
        return;
    }
    static FIRST: AtomicBool = AtomicBool::new(true);
    static START: OnceLock<Instant> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static LEFT_OUT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(Instant::now);
    let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let next = NEXT.load(Ordering::Relaxed);
    let interval = u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX);
    if now < next
        || NEXT
            .compare_exchange(next, now.saturating_add(interval), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        LEFT_OUT.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if FIRST.swap(false, Ordering::Relaxed) {
        eprintln!(
            "nats-otel: no `tracing` subscriber is installed, so failures are written here, at most one \
             line every {}s; install one (`telemetry::init()`, or `tracing_subscriber::fmt::init()`) to see each",
            INTERVAL.as_secs()
        );
    }
    let left_out = LEFT_OUT.swap(0, Ordering::Relaxed);
    let more = if left_out > 0 { format!(" ({left_out} more since the last line)") } else { String::new() };
    eprintln!("nats-otel: {}{more}", line());
}
