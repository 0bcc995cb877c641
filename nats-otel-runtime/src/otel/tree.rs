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

/// A span exporter that prints each trace as a tree when its local root span
/// ends: see your traces in the terminal while developing, without a collector.
///
/// ```
/// use nats_otel_runtime::tree::TreeExporter;
/// use opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let provider = SdkTracerProvider::builder().with_simple_exporter(TreeExporter::stderr()).build();
/// ```
#[derive(Debug)]
pub struct TreeExporter {
    pending: std::sync::Mutex<Vec<SpanData>>,
    color: bool,
    to_stdout: bool,
    streaming: bool,
}

impl TreeExporter {
    /// Prints to standard error, in color.
    pub fn stderr() -> Self {
        Self { pending: std::sync::Mutex::default(), color: true, to_stdout: false, streaming: true }
    }

    /// Prints to standard output, without color.
    pub fn stdout_plain() -> Self {
        Self { pending: std::sync::Mutex::default(), color: false, to_stdout: true, streaming: true }
    }

    /// In color (ANSI) or not.
    #[must_use]
    pub fn color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }

    /// Keeps every span and prints all traces once, at shutdown: whole traces that
    /// cross handlers of the same process in one tree, for short-lived programs.
    #[must_use]
    pub fn at_shutdown(mut self) -> Self {
        self.streaming = false;
        self
    }

    /// Takes the finished spans of every trace whose local root has ended.
    fn completed(&self, batch: Vec<SpanData>) -> Vec<SpanData> {
        let Ok(mut pending) = self.pending.lock() else { return Vec::new() };
        pending.extend(batch);
        let ids: HashSet<SpanId> = pending.iter().map(|s| s.span_context.span_id()).collect();
        // A local root: no parent, or a parent in another process.
        let done: HashSet<_> = pending
            .iter()
            .filter(|s| {
                s.parent_span_id == SpanId::INVALID
                    || (s.parent_span_is_remote && !ids.contains(&s.parent_span_id))
            })
            .map(|s| s.span_context.trace_id())
            .collect();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            pending.drain(..).partition(|s| done.contains(&s.span_context.trace_id()));
        *pending = waiting;
        ready
    }

    fn print(&self, spans: &[SpanData]) {
        if spans.is_empty() {
            return;
        }
        let text = render(spans, self.color);
        if self.to_stdout {
            print!("{text}");
        } else {
            eprint!("{text}");
        }
    }
}

impl opentelemetry_sdk::trace::SpanExporter for TreeExporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        if !self.streaming {
            if let Ok(mut pending) = self.pending.lock() {
                pending.extend(batch);
            }
            return Ok(());
        }
        let ready = self.completed(batch);
        self.print(&ready);
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        // Print what is left, even traces whose root never ended.
        let rest = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        self.print(&rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    fn spans() -> Vec<SpanData> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let tracer = provider.tracer("t");
        let root = tracer.start("send orders.eu");
        let cx = opentelemetry::Context::current_with_span(root);
        let mut child = tracer.start_with_context("process orders.*", &cx);
        child.set_status(opentelemetry::trace::Status::error("boom"));
        child.end();
        cx.span().end();
        exporter.get_finished_spans().unwrap()
    }

    #[test]
    fn renders_children_under_parents_and_marks_errors() {
        let text = render(&spans(), false);
        let lines: Vec<_> = text.lines().collect();
        assert!(lines[0].starts_with("trace "));
        assert!(lines[1].starts_with("  send orders.eu [INTERNAL]"));
        assert!(lines[2].starts_with("    process orders.* [INTERNAL]"));
        assert!(lines[2].ends_with("ERROR: boom"));
    }

    #[test]
    fn the_exporter_waits_for_the_root() {
        let spans = spans();
        let exporter = TreeExporter::stdout_plain();
        let (child, root): (Vec<_>, Vec<_>) = spans.into_iter().partition(|s| s.name == "process orders.*");
        assert!(exporter.completed(child).is_empty(), "the root has not ended yet");
        assert_eq!(exporter.completed(root).len(), 2, "the whole trace once the root ends");
    }
}
