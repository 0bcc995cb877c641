//! "Where would this message go?": a trace-only publish (`Nats-Trace-Only`),
//! which every server on the path reports on without delivering it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};

use super::journeys::Journeys;
use super::report::{ServerReport, TraceEvent};
use crate::error::{BrokerTraceError, BrokerTraceErrorKind};
use crate::otel::broker::{NATS_TRACE_DEST, NATS_TRACE_ONLY};
use crate::otel::semconv;
use crate::otel::trace_context::TraceContextPropagator;
use crate::otel::tracer::SCOPE_NAME;

/// How long [`dry_run`] waits for the servers' reports by default.
pub const DEFAULT_DRY_RUN_WAIT: Duration = Duration::from_secs(2);

/// Where a message would go: the reports of every server on its path, first
/// server first, then the servers it was forwarded to.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    reports: Vec<ServerReport>,
    complete: bool,
}

/// A subscription a message would be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The server the subscriber is connected to.
    pub server: String,
    /// The subscription's subject.
    pub subscription: String,
    /// Its queue group.
    pub queue: Option<String>,
}

impl Route {
    /// Every server's report, in path order.
    pub fn reports(&self) -> &[ServerReport] {
        &self.reports
    }

    /// Whether every server the message was forwarded to reported.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The application subscriptions it would be delivered to.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.events()
            .filter_map(|(report, event)| match event {
                TraceEvent::Egress { kind, subscription: Some(subscription), queue, error: None, .. }
                    if !kind.is_server() =>
                {
                    Some(Delivery {
                        server: report.server.name.clone(),
                        subscription: subscription.clone(),
                        queue: queue.clone(),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// The streams it would be stored in.
    pub fn streams(&self) -> Vec<&str> {
        self.events()
            .filter_map(|(_, event)| match event {
                TraceEvent::JetStream { stream, error: None, no_interest: false, .. } => {
                    Some(stream.as_str())
                }
                _ => None,
            })
            .collect()
    }

    /// What went wrong on the way (a permissions violation, a stream refusing it).
    pub fn errors(&self) -> Vec<&str> {
        self.events()
            .filter_map(|(_, event)| match event {
                TraceEvent::Ingress { error: Some(error), .. }
                | TraceEvent::JetStream { error: Some(error), .. }
                | TraceEvent::Egress { error: Some(error), .. } => Some(error.as_str()),
                _ => None,
            })
            .collect()
    }

    fn events(&self) -> impl Iterator<Item = (&ServerReport, &TraceEvent)> {
        self.reports.iter().flat_map(|report| report.events.iter().map(move |event| (report, event)))
    }
}

/// Publishes `payload` to `subject` trace-only: the servers route it as they
/// would, deliver it to no one, and report each step. Waits (at most `wait`)
/// until every server on the path has reported, records a `dry_run {subject}`
/// span (child of the current context) with a span per server under it, and
/// returns the route. Needs nats-server 2.11+ and the permission to subscribe
/// to this client's inboxes.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use nats_otel_runtime::broker_trace::{DEFAULT_DRY_RUN_WAIT, dry_run};
/// let route = dry_run(&client, "orders.eu", Default::default(), "{}".into(), DEFAULT_DRY_RUN_WAIT).await?;
/// for delivery in route.deliveries() {
///     println!("{} on {} ({:?})", delivery.subscription, delivery.server, delivery.queue);
/// }
/// println!("stored in {:?}; errors: {:?}", route.streams(), route.errors());
/// # Ok(()) }
/// ```
pub async fn dry_run(
    client: &Client,
    subject: &str,
    mut headers: HeaderMap,
    payload: Bytes,
    wait: Duration,
) -> Result<Route, BrokerTraceError> {
    nats_otel_rules::validate(subject, nats_otel_rules::Usage::Publish).map_err(|e| {
        BrokerTraceError::with_source(BrokerTraceErrorKind::InvalidSubject, e).context(subject.to_owned())
    })?;
    let scope = InstrumentationScope::builder(SCOPE_NAME).with_version(env!("CARGO_PKG_VERSION")).build();
    let tracer = opentelemetry::global::tracer_provider().tracer_with_scope(scope.clone());
    let builder =
        tracer.span_builder(format!("dry_run {subject}")).with_kind(SpanKind::Internal).with_attributes([
            KeyValue::new(semconv::MESSAGING_SYSTEM, semconv::SYSTEM_NATS),
            KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, subject.to_owned()),
        ]);
    let cx = Context::current().with_span(tracer.build_with_context(builder, &Context::current()));

    let result = async {
        let inbox = client.new_inbox();
        let mut reports = client.subscribe(inbox.clone()).await.map_err(|e| {
            BrokerTraceError::with_source(BrokerTraceErrorKind::Subscribe, e).context(inbox.clone())
        })?;
        // The servers read W3C trace context, whatever the global propagator.
        let mut trace_headers = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut trace_headers);
        for (name, value) in trace_headers {
            headers.insert(name.as_str(), value.as_str());
        }
        headers.insert(NATS_TRACE_DEST, inbox.as_str());
        headers.insert(NATS_TRACE_ONLY, "true");
        client
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await
            .map_err(|e| BrokerTraceError::with_source(BrokerTraceErrorKind::Publish, e))?;
        client.flush().await.map_err(|e| BrokerTraceError::with_source(BrokerTraceErrorKind::Publish, e))?;

        let deadline = tokio::time::Instant::now() + wait;
        let mut expected = BTreeSet::from([String::new()]);
        let mut received = Vec::new();
        while !expected.is_empty() {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, reports.next()).await else { break };
            let Ok(report) = serde_json::from_slice::<ServerReport>(&message.payload) else { continue };
            expected.remove(report.request.hop());
            for event in &report.events {
                if let TraceEvent::Egress { kind, hop: Some(hop), error: None, .. } = event
                    && kind.is_server()
                {
                    expected.insert(hop.clone());
                }
            }
            received.push(report);
        }
        let _ = reports.unsubscribe().await;
        if received.is_empty() {
            return Err(BrokerTraceError::new(BrokerTraceErrorKind::NoReport).context(format!(
                "no server reported on `{subject}` within {wait:?}: nats-server 2.11+ is needed, and the \
                 permission to subscribe to this client's inboxes"
            )));
        }
        received.sort_by_key(|report| path_order(report.request.hop()));
        let server_tracer = opentelemetry::global::tracer_provider().tracer_with_scope(scope);
        let mut journeys = Journeys::new(server_tracer, Duration::ZERO);
        let now = Instant::now();
        for report in received.iter().cloned() {
            let _ = journeys.add(report, now);
        }
        journeys.finish();
        Ok(Route { reports: received, complete: expected.is_empty() })
    }
    .await;
    let span = cx.span();
    if let Err(e) = &result {
        span.set_status(opentelemetry::trace::Status::error(format!("{e:#}")));
    }
    span.end();
    result
}

/// `1.10` after `1.9`: hops compared as numbers, the first server first.
fn path_order(hop: &str) -> Vec<u64> {
    if hop.is_empty() {
        return Vec::new();
    }
    hop.split('.').map(|part| part.parse().unwrap_or(u64::MAX)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_sort_in_path_order() {
        let mut hops = vec!["1.10", "2", "", "1", "1.9"];
        hops.sort_by_key(|hop| path_order(hop));
        assert_eq!(hops, ["", "1", "1.9", "1.10", "2"]);
    }
}
