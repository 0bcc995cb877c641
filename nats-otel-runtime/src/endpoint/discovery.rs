//! What the NATS Services API reports of an endpoint: what it is (`INFO`) and
//! what it has served (`STATS`). The counts are kept where the endpoint's
//! metrics are recorded, once per message, so the two cannot disagree.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::handler::reply::Failure;

/// An endpoint as `INFO` describes it (serialized as ADR-32's endpoint info).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EndpointInfo {
    /// Its name: the handler's, made a valid Services API name.
    pub name: String,
    /// The subject it listens on (a JetStream consumer: its filter subjects,
    /// comma-separated; its stream when it has none).
    pub subject: String,
    /// Its queue group (a JetStream consumer: its durable name, the group its
    /// instances share work in); empty without one.
    pub queue_group: String,
    /// Endpoint metadata (a JetStream consumer: `nats_otel.kind`, `nats_otel.stream`, `nats_otel.durable`).
    pub metadata: BTreeMap<String, String>,
}

/// A handler's name as a Services API endpoint name: the last path segment,
/// with what ADR-32 does not allow in a name replaced by `_`.
pub(crate) fn endpoint_name(handler: Option<&str>) -> String {
    let last = handler.and_then(|name| name.rsplit("::").next()).unwrap_or_default();
    let name: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if name.is_empty() { "handler".to_owned() } else { name }
}

/// An endpoint's counts since it started or since the last reset.
#[derive(Debug, Default)]
pub struct EndpointStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Nanoseconds.
    processing: AtomicU64,
    /// The last failure, as `{error.type}: {message}`.
    last_error: Mutex<Option<Box<str>>>,
}

/// A copy of an endpoint's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages processed (requests, for a request-reply endpoint).
    pub requests: u64,
    /// Messages whose processing failed.
    pub errors: u64,
    /// Time spent processing them, in all.
    pub processing_time: Duration,
    /// The last failure as `{error.type}: {message}` (`503: pricing is
    /// closed`), empty when none.
    pub last_error: String,
}

impl StatsSnapshot {
    /// The mean processing time (zero without requests).
    pub fn average_processing_time(&self) -> Duration {
        match u32::try_from(self.requests) {
            Ok(0) => Duration::ZERO,
            Ok(requests) => self.processing_time / requests,
            Err(_) => Duration::from_nanos(duration_nanos(self.processing_time) / self.requests),
        }
    }
}

/// Nanoseconds as the Services API counts them (saturating past 584 years).
pub(crate) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl EndpointStats {
    /// One message processed in `elapsed`, failed with `failure` if any: three
    /// uncontended atomic additions; a lock only for a failure.
    pub(crate) fn record(&self, elapsed: Duration, failure: Option<&Failure>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // u64 nanoseconds hold 584 years of processing: no overflow to guard.
        self.processing.fetch_add(duration_nanos(elapsed), Ordering::Relaxed);
        if let Some(failure) = failure {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let last = format!("{}: {}", failure.error_type(), failure.message());
            *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(last.into());
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            processing_time: Duration::from_nanos(self.processing.load(Ordering::Relaxed)),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Back to zero (the Services API's stats reset).
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.processing.store(0, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_names_become_valid_endpoint_names() {
        assert_eq!(endpoint_name(Some("billing::charge")), "charge");
        assert_eq!(endpoint_name(Some("my_app::handlers::get_quote<T>")), "get_quote_T_");
        assert_eq!(endpoint_name(None), "handler");
        for name in ["charge", "get_quote_T_", "handler"] {
            assert!(nats_otel_rules::validate_service_name(name).is_ok());
        }
    }

    #[test]
    fn counts_failures_and_averages_and_resets() {
        let stats = EndpointStats::default();
        assert_eq!(stats.snapshot().average_processing_time(), Duration::ZERO);
        stats.record(Duration::from_millis(10), None);
        let failure = Failure::from_error(&crate::ServiceError::new(503, "closed"));
        stats.record(Duration::from_millis(30), Some(&failure));
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.requests, snapshot.errors), (2, 1));
        assert_eq!(snapshot.processing_time, Duration::from_millis(40));
        assert_eq!(snapshot.average_processing_time(), Duration::from_millis(20));
        assert_eq!(snapshot.last_error, "503: closed");
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
