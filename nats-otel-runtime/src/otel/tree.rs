//! Finished spans rendered as an indented tree per trace, for terminals: see your
//! traces in local development without a collector.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;

/// Attributes shown next to each span, when present.
const KEY_ATTRIBUTES: &[&str] = &[
    "messaging.destination.name",
    "messaging.consumer.group.name",
    "messaging.nats.reply_to",
    "messaging.message.body.size",
    "messaging.batch.message_count",
    "messaging.nats.jetstream.setup",
    "messaging.nats.kv.operation",
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

/// How long a trace stays quiet, after a local root of it has ended, before it
/// prints: long enough for its late spans (a handler that finishes after the
/// publisher's span, a broker's report) to join the same tree.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(250);

/// A span exporter that prints each trace as a tree once a local root span of it
/// has ended and the trace has been quiet for a moment ([`settle`](Self::settle)):
/// see your traces in the terminal while developing, without a collector.
///
/// Spans are gathered and printed on a thread of the exporter's own, so ending
/// a span costs a channel send. Shutting the provider down prints what is left.
///
/// ```
/// use nats_otel_runtime::tree::TreeExporter;
/// use opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let provider = SdkTracerProvider::builder().with_simple_exporter(TreeExporter::stderr()).build();
/// ```
#[derive(Debug)]
pub struct TreeExporter {
    printer: Printer,
    /// `None`: keep everything until shutdown.
    settle: Option<Duration>,
    assembler: OnceLock<Mutex<mpsc::Sender<Command>>>,
}

impl TreeExporter {
    /// Prints to standard error, in color.
    pub fn stderr() -> Self {
        Self::new(Printer { color: true, to_stdout: false })
    }

    /// Prints to standard output, without color.
    pub fn stdout_plain() -> Self {
        Self::new(Printer { color: false, to_stdout: true })
    }

    fn new(printer: Printer) -> Self {
        Self { printer, settle: Some(DEFAULT_SETTLE), assembler: OnceLock::new() }
    }

    /// In color (ANSI) or not.
    #[must_use]
    pub fn color(mut self, on: bool) -> Self {
        self.printer.color = on;
        self
    }

    /// How long a trace must be quiet after a local root ends before it prints
    /// (default [`DEFAULT_SETTLE`]).
    #[must_use]
    pub fn settle(mut self, quiet: Duration) -> Self {
        self.settle = Some(quiet);
        self
    }

    /// Keeps every span and prints all traces once, at shutdown: for short-lived
    /// programs whose traces should print after their own output.
    #[must_use]
    pub fn at_shutdown(mut self) -> Self {
        self.settle = None;
        self
    }

    /// The channel to the assembling thread, started on first use.
    fn assembler(&self) -> &Mutex<mpsc::Sender<Command>> {
        self.assembler.get_or_init(|| {
            let (sender, commands) = mpsc::channel();
            let (printer, settle) = (self.printer, self.settle);
            let spawned = std::thread::Builder::new()
                .name("nats-otel-tree".into())
                .spawn(move || assemble(&commands, printer, settle));
            if let Err(error) = spawned {
                eprintln!("nats-otel: the console trace exporter could not start its thread: {error}");
            }
            Mutex::new(sender)
        })
    }

    fn send(&self, command: Command) -> bool {
        self.assembler().lock().map(|sender| sender.send(command).is_ok()).unwrap_or(false)
    }
}

/// Where and how trees are written.
#[derive(Debug, Clone, Copy)]
struct Printer {
    color: bool,
    to_stdout: bool,
}

impl Printer {
    fn print(self, spans: &[SpanData]) {
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

enum Command {
    Spans(Vec<SpanData>),
    /// Print everything now, then answer.
    Flush(mpsc::SyncSender<()>),
}

/// The assembling thread: gathers spans by trace and prints settled traces,
/// waking only while some are waiting.
fn assemble(commands: &mpsc::Receiver<Command>, printer: Printer, settle: Option<Duration>) {
    let mut traces = Traces::default();
    loop {
        let command = match settle {
            Some(quiet) if !traces.is_empty() => match commands.recv_timeout(quiet / 4) {
                Ok(command) => Some(command),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            _ => match commands.recv() {
                Ok(command) => Some(command),
                Err(mpsc::RecvError) => break,
            },
        };
        match command {
            Some(Command::Spans(batch)) => traces.add(batch, Instant::now()),
            Some(Command::Flush(done)) => {
                printer.print(&traces.take_all());
                let _ = done.send(());
            }
            None => {}
        }
        if let Some(quiet) = settle {
            printer.print(&traces.take_settled(Instant::now(), quiet));
        }
    }
    printer.print(&traces.take_all());
}

/// Finished spans waiting to print, by trace.
#[derive(Default)]
struct Traces {
    waiting: HashMap<TraceId, Waiting>,
}

struct Waiting {
    spans: Vec<SpanData>,
    last: Instant,
}

impl Waiting {
    /// Whether a local root has ended: a span without a parent, or whose
    /// parent is in another process (remote and not among these spans).
    fn has_local_root(&self) -> bool {
        let ids: HashSet<SpanId> = self.spans.iter().map(|s| s.span_context.span_id()).collect();
        self.spans.iter().any(|s| {
            s.parent_span_id == SpanId::INVALID
                || (s.parent_span_is_remote && !ids.contains(&s.parent_span_id))
        })
    }
}

impl Traces {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn add(&mut self, batch: Vec<SpanData>, now: Instant) {
        for span in batch {
            let trace = self
                .waiting
                .entry(span.span_context.trace_id())
                .or_insert_with(|| Waiting { spans: Vec::new(), last: now });
            trace.spans.push(span);
            trace.last = now;
        }
    }

    /// The spans of every trace with an ended local root and nothing new for `quiet`.
    fn take_settled(&mut self, now: Instant, quiet: Duration) -> Vec<SpanData> {
        let settled: Vec<TraceId> = self
            .waiting
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.last) >= quiet && t.has_local_root())
            .map(|(id, _)| *id)
            .collect();
        settled.iter().filter_map(|id| self.waiting.remove(id)).flat_map(|t| t.spans).collect()
    }

    /// Everything, even traces whose root never ended.
    fn take_all(&mut self) -> Vec<SpanData> {
        self.waiting.drain().flat_map(|(_, t)| t.spans).collect()
    }
}

impl opentelemetry_sdk::trace::SpanExporter for TreeExporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        if !self.send(Command::Spans(batch)) {
            return Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "the console trace exporter's thread has stopped".into(),
            ));
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        // Print what is left, even traces whose root never ended.
        let (done, printed) = mpsc::sync_channel(1);
        if self.send(Command::Flush(done)) && printed.recv_timeout(timeout).is_err() {
            return Err(opentelemetry_sdk::error::OTelSdkError::Timeout(timeout));
        }
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
    fn a_trace_prints_once_a_local_root_has_ended_and_it_is_quiet() {
        let quiet = Duration::from_millis(250);
        let start = Instant::now();
        let (child, root): (Vec<_>, Vec<_>) = spans().into_iter().partition(|s| s.name == "process orders.*");
        let mut traces = Traces::default();
        traces.add(child, start);
        assert!(traces.take_settled(start + quiet * 2, quiet).is_empty(), "the root has not ended yet");
        traces.add(root, start + quiet * 2);
        assert!(traces.take_settled(start + quiet * 2, quiet).is_empty(), "late spans may still come");
        assert_eq!(traces.take_settled(start + quiet * 3, quiet).len(), 2, "the whole trace, once quiet");
        assert!(traces.is_empty());
    }

    #[test]
    fn a_span_from_another_process_is_a_local_root() {
        let (child, _root): (Vec<_>, Vec<_>) =
            spans().into_iter().partition(|s| s.name == "process orders.*");
        let mut remote = child;
        remote[0].parent_span_is_remote = true;
        let mut traces = Traces::default();
        let start = Instant::now();
        traces.add(remote, start);
        assert_eq!(traces.take_settled(start + DEFAULT_SETTLE, DEFAULT_SETTLE).len(), 1);
    }

    #[test]
    fn shutdown_waits_until_the_thread_has_printed() {
        use opentelemetry_sdk::trace::SpanExporter as _;
        let exporter = TreeExporter::stdout_plain().at_shutdown();
        let (child, _root): (Vec<_>, Vec<_>) =
            spans().into_iter().partition(|s| s.name == "process orders.*");
        futures_executor(exporter.export(child)).unwrap();
        exporter.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
    }

    /// Runs a future that never waits (the exporter's `export` only sends).
    fn futures_executor<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => unreachable!("export does not wait"),
        }
    }
}
