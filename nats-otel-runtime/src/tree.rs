//! Finished spans rendered as an indented tree per trace, for terminals: see your
//! traces in local development without a collector.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

/// Attributes shown next to each span, when present.
const KEY_ATTRIBUTES: &[&str] = &[
    "messaging.destination.name",
    "messaging.consumer.group.name",
    "messaging.nats.reply_to",
    "messaging.message.body.size",
    "error.type",
];

/// Renders `spans` as one tree per trace, roots first, children by start time.
///
/// Each line shows the span name, kind, duration and key attributes; failed spans
/// are marked `ERROR` (in red when `color` is set) with their status description.
///
/// ```
/// let text = nats_otel_runtime::tree::render(&[], false);
/// assert!(text.is_empty());
/// ```
pub fn render(spans: &[SpanData], color: bool) -> String {
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        if span.parent_span_id != SpanId::INVALID && ids.contains(&span.parent_span_id) {
            children.entry(span.parent_span_id).or_default().push(span);
        } else {
            roots.push(span);
        }
    }
    roots.sort_by_key(|s| s.start_time);
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_time);
    }
    let mut out = String::new();
    for root in roots {
        let _ = writeln!(out, "trace {}", root.span_context.trace_id());
        write_span(&mut out, root, &children, 1, color);
    }
    out
}

fn write_span(
    out: &mut String,
    span: &SpanData,
    children: &HashMap<SpanId, Vec<&SpanData>>,
    depth: usize,
    color: bool,
) {
    let kind = match span.span_kind {
        SpanKind::Client => "CLIENT",
        SpanKind::Server => "SERVER",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    };
    let duration = span.end_time.duration_since(span.start_time).unwrap_or_default();
    let _ = write!(out, "{}{} [{kind}] {:.2?}", "  ".repeat(depth), span.name, duration);
    for key in KEY_ATTRIBUTES {
        if let Some(kv) = span.attributes.iter().find(|kv| kv.key.as_str() == *key) {
            let _ = write!(out, " {key}={}", kv.value);
        }
    }
    if !span.links.links.is_empty() {
        let _ = write!(out, " links={}", span.links.links.len());
    }
    if let Status::Error { description } = &span.status {
        let (on, off) = if color { ("\x1b[31m", "\x1b[0m") } else { ("", "") };
        let _ = write!(out, " {on}ERROR: {description}{off}");
    }
    out.push('\n');
    for event in span.events.iter() {
        let _ = writeln!(out, "{}· {}", "  ".repeat(depth + 1), event.name);
    }
    for child in children.get(&span.span_context.span_id()).into_iter().flatten() {
        write_span(out, child, children, depth + 1, color);
    }
}
