//! Log lines joined to traces: a `tracing-subscriber` event formatter that adds
//! the current trace id, span id and message subject to every line written
//! inside a handler (or any active OpenTelemetry span).
//!
//! A handler runs with its `process` span's context active, so the ids are
//! read from [`Context::current`]: nothing is added to the handler's path. The
//! subject rides in that context too, but only once a formatter has been made
//! (`LogContext::new`): a service that logs without it pays nothing.
//!
//! The formatter is `LogContext` (feature `logs`); `telemetry::init` installs
//! its text form.

#[cfg(feature = "logs")]
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "logs")]
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, StringValue};

/// Set once a formatter that prints the subject exists.
#[cfg(feature = "logs")]
static SUBJECT_WANTED: AtomicBool = AtomicBool::new(false);

/// The subject of the message a handler is processing, in its context.
#[cfg(feature = "logs")]
#[derive(Debug, Clone)]
struct Subject(StringValue);

/// Adds the message's subject to a handler's context when a formatter will
/// print it (three small allocations a message; none otherwise).
#[cfg(feature = "logs")]
pub(crate) fn with_subject(cx: Context, subject: impl FnOnce() -> StringValue) -> Context {
    if SUBJECT_WANTED.load(Ordering::Relaxed) && cx.has_active_span() {
        cx.with_value(Subject(subject()))
    } else {
        cx
    }
}

/// Without the formatter (feature `logs`) nothing reads the subject.
#[cfg(not(feature = "logs"))]
pub(crate) fn with_subject(cx: Context, _subject: impl FnOnce() -> StringValue) -> Context {
    cx
}

/// What a log line gets from the current context: none outside a valid span.
#[cfg(feature = "logs")]
struct LogFields {
    trace_id: opentelemetry::trace::TraceId,
    span_id: opentelemetry::trace::SpanId,
    /// The subject of the message being processed, when a handler runs.
    destination: Option<StringValue>,
}

#[cfg(feature = "logs")]
impl LogFields {
    /// Copies, not strings: the ids print as hex straight into the line (807
    /// fewer instructions a line than three `String`s, benchmark scenario L).
    fn current() -> Option<Self> {
        Context::map_current(|cx| {
            let span = cx.span();
            let ids = span.span_context();
            ids.is_valid().then(|| Self {
                trace_id: ids.trace_id(),
                span_id: ids.span_id(),
                destination: cx.get::<Subject>().map(|subject| subject.0.clone()),
            })
        })
    }
}

#[cfg(feature = "logs")]
pub use self::format::LogContext;

#[cfg(feature = "logs")]
mod format {
    use std::fmt;
    use std::sync::atomic::Ordering;

    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    use super::{LogFields, SUBJECT_WANTED};

    /// How the inner formatter's lines are shaped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Shape {
        /// One text line: the fields go at its end, as `key=value`.
        Text,
        /// One JSON object: the fields go first in it.
        Json,
    }

    /// An event formatter that adds `trace_id`, `span_id` and
    /// `messaging.destination.name` to the lines `inner` writes inside a span
    /// (see the [module](super) docs). Lines outside any span are `inner`'s own.
    ///
    /// The line is formatted into a buffer first: to keep colours, give `inner`
    /// them itself (`Format::default().with_ansi(true)`).
    ///
    /// ```
    /// use nats_otel_runtime::log_context::LogContext;
    /// use tracing_subscriber::fmt::format::Format;
    ///
    /// // `… INFO app: charged amount=3 trace_id=4bf9… span_id=00f0… messaging.destination.name=orders.eu`
    /// let subscriber = tracing_subscriber::fmt().event_format(LogContext::new(Format::default())).finish();
    /// # drop(subscriber);
    /// ```
    ///
    /// With `tracing-subscriber`'s `json` feature, `LogContext::json(format().json())`
    /// puts the same three fields first in each JSON object.
    #[derive(Debug, Clone)]
    pub struct LogContext<F> {
        inner: F,
        shape: Shape,
    }

    impl<F> LogContext<F> {
        /// Wraps a text formatter (`Format::default()`, `.compact()`, …).
        pub fn new(inner: F) -> Self {
            SUBJECT_WANTED.store(true, Ordering::Relaxed);
            Self { inner, shape: Shape::Text }
        }

        /// Wraps a JSON formatter (`format().json()`): each object gains the fields.
        pub fn json(inner: F) -> Self {
            SUBJECT_WANTED.store(true, Ordering::Relaxed);
            Self { inner, shape: Shape::Json }
        }
    }

    impl<S, N, F> FormatEvent<S, N> for LogContext<F>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let Some(fields) = LogFields::current() else {
                return self.inner.format_event(ctx, writer, event);
            };
            let mut line = String::with_capacity(256);
            self.inner.format_event(ctx, Writer::new(&mut line), event)?;
            let body = line.strip_suffix('\n').unwrap_or(&line);
            match self.shape {
                Shape::Text => {
                    write!(writer, "{body} trace_id={} span_id={}", fields.trace_id, fields.span_id)?;
                    if let Some(destination) = &fields.destination {
                        write!(writer, " messaging.destination.name={destination}")?;
                    }
                }
                Shape::Json => {
                    let Some(rest) = body.strip_prefix('{') else {
                        // Not an object after all: leave it as it is.
                        return writeln!(writer, "{body}");
                    };
                    write!(
                        writer,
                        "{{\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                        fields.trace_id, fields.span_id
                    )?;
                    if let Some(destination) = &fields.destination {
                        let quoted = serde_json::to_string(destination.as_str()).map_err(|_| fmt::Error)?;
                        write!(writer, ",\"messaging.destination.name\":{quoted}")?;
                    }
                    if rest.trim_start() != "}" {
                        writer.write_char(',')?;
                    }
                    writer.write_str(rest)?;
                }
            }
            writeln!(writer)
        }
    }
}
