//! Asking nats-server to trace a message's path (ADR-41, nats-server 2.11+): a
//! message carrying `Nats-Trace-Dest: <subject>` makes every server it crosses
//! publish what it did with it to that subject.
//! [`broker_trace`](crate::broker_trace) turns those reports into spans.
//!
//! [`BrokerTracing`] is the publisher's side: which sampled publishes carry the
//! header. Without it (the default) no header is added and nothing else runs.

use async_nats::HeaderMap;
use async_nats::header::HeaderValue;
use opentelemetry::Context;
use opentelemetry::trace::{TraceContextExt, TraceId};

/// The header naming where servers send their trace reports.
pub const NATS_TRACE_DEST: &str = "Nats-Trace-Dest";
/// The header asking servers to trace a message without delivering it.
pub const NATS_TRACE_ONLY: &str = "Nats-Trace-Only";
/// The header a server sets when it forwards a traced message to another server
/// (`1`, `1.2`, …): where the receiving server's report sits in the path.
pub const NATS_TRACE_HOP: &str = "Nats-Trace-Hop";

/// Which publishes ask the servers for a trace of their path, and where the
/// reports go: give it to [`Publisher::broker_tracing`](crate::Publisher::broker_tracing)
/// and run a [`Collector`](crate::broker_trace::Collector) on the same subject.
///
/// Only publishes whose span is sampled are candidates (a report joins the
/// message's trace, so an unsampled trace has nowhere to go); of those, a share
/// `ratio` is traced, chosen by trace id like OpenTelemetry's
/// `TraceIdRatioBased` sampler, so every publish of one trace decides alike.
///
/// ```
/// use nats_otel_runtime::broker::BrokerTracing;
/// let one_in_a_hundred = BrokerTracing::new("traces.broker").unwrap().ratio(0.01);
/// assert!(BrokerTracing::new("traces.*").is_err(), "a destination is a concrete subject");
/// ```
#[derive(Debug, Clone)]
pub struct BrokerTracing {
    destination: HeaderValue,
    subject: String,
    /// A trace is traced when its id's lower 63 bits are below this.
    threshold: u64,
}

impl BrokerTracing {
    /// Every sampled publish is traced, reports to `destination` (a subject to
    /// publish to: no wildcards).
    pub fn new(destination: impl Into<String>) -> Result<Self, nats_otel_rules::SubjectError> {
        let subject = destination.into();
        nats_otel_rules::validate(&subject, nats_otel_rules::Usage::Publish)?;
        let destination = HeaderValue::from(subject.as_str());
        Ok(Self { destination, subject, threshold: u64::MAX })
    }

    /// Traces this share of sampled publishes (0.0 to 1.0; default 1.0).
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.threshold = if ratio.is_nan() || ratio <= 0.0 {
            0
        } else if ratio >= 1.0 {
            u64::MAX
        } else {
            // As the SDK's TraceIdRatioBased: the id's lower 63 bits against ratio × 2^63.
            (ratio * (1u64 << 63) as f64) as u64
        };
        self
    }

    /// Where the reports go.
    pub fn destination(&self) -> &str {
        &self.subject
    }

    /// Whether a publish of trace `trace_id` is traced.
    fn traces(&self, trace_id: TraceId) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        let bytes = trace_id.to_bytes();
        let mut low = [0u8; 8];
        low.copy_from_slice(&bytes[8..]);
        (u64::from_be_bytes(low) >> 1) < self.threshold
    }

    /// Adds the header when the publish's span (in `cx`) is sampled and its
    /// trace is chosen.
    pub(crate) fn mark(&self, cx: &Context, headers: &mut HeaderMap) {
        let span = cx.span();
        let span_context = span.span_context();
        if span_context.is_sampled() && self.traces(span_context.trace_id()) {
            headers.insert(NATS_TRACE_DEST, self.destination.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    use super::*;

    fn publish(flags: TraceFlags, low: u64) -> Context {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&low.to_be_bytes());
        let span_context =
            SpanContext::new(TraceId::from_bytes(id), SpanId::from(7), flags, false, TraceState::NONE);
        Context::new().with_remote_span_context(span_context)
    }

    fn marked(tracing: &BrokerTracing, cx: &Context) -> bool {
        let mut headers = HeaderMap::new();
        tracing.mark(cx, &mut headers);
        headers.get(NATS_TRACE_DEST).map(|v| v.as_str().to_owned()) == Some("traces.broker".to_owned())
    }

    #[test]
    fn only_sampled_publishes_of_chosen_traces_carry_the_header() {
        let all = BrokerTracing::new("traces.broker").unwrap();
        assert!(marked(&all, &publish(TraceFlags::SAMPLED, u64::MAX)));
        assert!(!marked(&all, &publish(TraceFlags::default(), 0)), "unsampled");
        assert!(!marked(&all, &Context::new()), "no span");

        let half = all.clone().ratio(0.5);
        assert!(marked(&half, &publish(TraceFlags::SAMPLED, 0)));
        assert!(!marked(&half, &publish(TraceFlags::SAMPLED, u64::MAX)));
        let none = all.ratio(0.0);
        assert!(!marked(&none, &publish(TraceFlags::SAMPLED, 0)));
    }
}
