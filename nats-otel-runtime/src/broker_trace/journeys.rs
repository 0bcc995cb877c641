//! Reports grouped by message, so each server's span is the child of the span
//! of the server that forwarded the message to it.
//!
//! Servers report independently, so a forwarded message's report may arrive
//! before its forwarder's. It waits (at most `wait`) for its parent; after
//! that it is recorded under the nearest ancestor already recorded, or under
//! the publisher's span.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};

use super::report::ServerReport;
use super::spans;
use crate::otel::trace_context::TraceContextPropagator;

/// Most messages followed at once; past it the oldest is finished early.
const MAX_JOURNEYS: usize = 10_000;

/// A report without a valid `traceparent`: it joins no trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Untraceable;

/// The messages being followed, by trace and publisher span.
pub(crate) struct Journeys {
    tracer: BoxedTracer,
    wait: Duration,
    journeys: HashMap<(TraceId, SpanId), Journey>,
}

impl std::fmt::Debug for Journeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journeys").field("following", &self.journeys.len()).finish_non_exhaustive()
    }
}

struct Journey {
    /// The publisher's span (remote), parent of the first server's.
    origin: Context,
    /// Recorded servers' spans by hop (`""` for the first server).
    recorded: HashMap<String, Context>,
    /// Reports whose parent has not been recorded yet, with when they came.
    waiting: Vec<(ServerReport, Instant)>,
    last: Instant,
}

impl Journeys {
    pub(crate) fn new(tracer: BoxedTracer, wait: Duration) -> Self {
        Self { tracer, wait, journeys: HashMap::new() }
    }

    /// Records `report` (and the reports that waited for it); returns how many
    /// spans were recorded.
    pub(crate) fn add(&mut self, report: ServerReport, now: Instant) -> Result<usize, Untraceable> {
        let origin = origin(&report).ok_or(Untraceable)?;
        let key = {
            let span = origin.span();
            (span.span_context().trace_id(), span.span_context().span_id())
        };
        if !self.journeys.contains_key(&key) && self.journeys.len() >= MAX_JOURNEYS {
            self.evict_oldest();
        }
        let journey = self.journeys.entry(key).or_insert_with(|| Journey {
            origin,
            recorded: HashMap::new(),
            waiting: Vec::new(),
            last: now,
        });
        journey.last = now;
        let hop = report.request.hop().to_owned();
        let parent = match parent_hop(&hop) {
            None => Some(journey.origin.clone()),
            Some(parent) => journey.recorded.get(parent).cloned(),
        };
        match parent {
            Some(parent) => Ok(journey.record(&self.tracer, report, &parent)),
            None => {
                journey.waiting.push((report, now));
                Ok(0)
            }
        }
    }

    /// Records the reports that waited longer than `wait` under their nearest
    /// recorded ancestor, and forgets messages quiet for a while; returns how
    /// many spans were recorded.
    pub(crate) fn tick(&mut self, now: Instant) -> usize {
        let wait = self.wait;
        let mut recorded = 0;
        for journey in self.journeys.values_mut() {
            recorded += journey.release(&self.tracer, |came| now.duration_since(came) >= wait);
        }
        let keep = wait.saturating_mul(10).max(Duration::from_secs(5));
        self.journeys
            .retain(|_, journey| !journey.waiting.is_empty() || now.duration_since(journey.last) < keep);
        recorded
    }

    /// Records every waiting report now (at shutdown).
    pub(crate) fn finish(&mut self) -> usize {
        let recorded =
            self.journeys.values_mut().map(|journey| journey.release(&self.tracer, |_| true)).sum();
        self.journeys.clear();
        recorded
    }

    fn evict_oldest(&mut self) {
        let Some(oldest) = self.journeys.iter().min_by_key(|(_, journey)| journey.last).map(|(key, _)| *key)
        else {
            return;
        };
        if let Some(mut journey) = self.journeys.remove(&oldest) {
            journey.release(&self.tracer, |_| true);
        }
    }
}

impl Journey {
    /// Records `report` under `parent`, then the waiting reports it forwarded to.
    fn record(&mut self, tracer: &BoxedTracer, report: ServerReport, parent: &Context) -> usize {
        let mut pending = vec![(report, parent.clone())];
        let mut recorded = 0;
        while let Some((report, parent)) = pending.pop() {
            let hop = report.request.hop().to_owned();
            let cx = spans::record(tracer, &report, &parent);
            recorded += 1;
            let (children, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|(waiting, _)| parent_hop(waiting.request.hop()) == Some(hop.as_str()));
            self.waiting = rest;
            pending.extend(children.into_iter().map(|(child, _)| (child, cx.clone())));
            self.recorded.insert(hop, cx);
        }
        recorded
    }

    /// Records the waiting reports `due` says not to wait for any longer,
    /// shallowest first, under their nearest recorded ancestor.
    fn release(&mut self, tracer: &BoxedTracer, due: impl Fn(Instant) -> bool) -> usize {
        let mut recorded = 0;
        self.waiting.sort_by_key(|(report, _)| report.request.hop().split('.').count());
        while let Some(index) = self.waiting.iter().position(|(_, came)| due(*came)) {
            let (report, _) = self.waiting.remove(index);
            let parent = self.nearest_recorded(report.request.hop());
            recorded += self.record(tracer, report, &parent);
        }
        recorded
    }

    fn nearest_recorded(&self, hop: &str) -> Context {
        let mut hop = hop;
        while let Some(parent) = parent_hop(hop) {
            if let Some(cx) = self.recorded.get(parent) {
                return cx.clone();
            }
            hop = parent;
        }
        self.origin.clone()
    }
}

/// The hop of the server that forwarded to `hop`: `1.2` → `1`, `1` → `` (the
/// first server); `None` for the first server itself.
pub(crate) fn parent_hop(hop: &str) -> Option<&str> {
    if hop.is_empty() {
        return None;
    }
    Some(hop.rsplit_once('.').map_or("", |(parent, _)| parent))
}

/// The publisher's span, from the `traceparent` the report echoes.
fn origin(report: &ServerReport) -> Option<Context> {
    let headers: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), report.request.header(name)?.to_owned())))
        .collect();
    let cx = TraceContextPropagator::new().extract(&headers);
    cx.span().span_context().is_valid().then_some(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_have_their_forwarders_as_parents() {
        assert_eq!(parent_hop(""), None);
        assert_eq!(parent_hop("1"), Some(""));
        assert_eq!(parent_hop("2"), Some(""));
        assert_eq!(parent_hop("1.2"), Some("1"));
        assert_eq!(parent_hop("1.2.3"), Some("1.2"));
    }
}
