//! `tracing` events outside any `tracing` span, recorded on the current
//! OpenTelemetry span: a handler's `tracing::info!` lands on its `process` span.
//!
//! nats-otel's spans are OpenTelemetry spans (see [`tracer`](crate::tracer)), not
//! `tracing` spans, and the `tracing-opentelemetry` layer only records an event
//! on the `tracing` span it happens in. This layer takes the others: an event
//! with no `tracing` span around it becomes an event of the current
//! OpenTelemetry span, if one is recording (name: the message; attributes: the
//! fields, `level` and `target`). Events in a `tracing` span, and events with
//! an explicit parent, are left to `tracing-opentelemetry`; root events
//! (`parent: None`, as nats-otel's own log lines) are not recorded.
//!
//! [`telemetry::init`](crate::telemetry) installs it. With a subscriber of your
//! own, add it next to the OpenTelemetry layer, both with a level filter as
//! `telemetry::init` has: async-nats writes `trace!`/`debug!` events for every
//! pulled JetStream message, and each one that reaches the layers costs about
//! 1,100 instructions.
//!
//! ```
//! use tracing_subscriber::Layer as _;
//! use tracing_subscriber::filter::LevelFilter;
//! use tracing_subscriber::layer::SubscriberExt;
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_filter(LevelFilter::INFO))
//!     .with(nats_otel_runtime::span_events::SpanEvents::new().with_filter(LevelFilter::INFO));
//! # let _ = subscriber;
//! ```

use std::borrow::Cow;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{self, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The layer; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanEvents {
    _private: (),
}

impl SpanEvents {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for SpanEvents
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_event(&self, event: &Event<'_>, ctx: layer::Context<'_, S>) {
        if !event.is_contextual() || ctx.lookup_current().is_some() {
            return;
        }
        Context::map_current(|cx| {
            let span = cx.span();
            if !span.is_recording() {
                return;
            }
            let metadata = event.metadata();
            let mut fields = Fields {
                name: None,
                attributes: vec![
                    KeyValue::new("level", metadata.level().as_str()),
                    KeyValue::new("target", Cow::Owned(metadata.target().to_owned())),
                ],
            };
            event.record(&mut fields);
            let name = fields.name.unwrap_or(Cow::Borrowed(metadata.name()));
            span.add_event(name, fields.attributes);
        });
    }
}

/// Collects an event's message and fields.
struct Fields {
    name: Option<Cow<'static, str>>,
    attributes: Vec<KeyValue>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.name = Some(Cow::Owned(value.as_str().into_owned()));
        } else {
            self.attributes.push(KeyValue::new(field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::I64));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::from(value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_outside_tracing_spans_land_on_the_current_otel_span() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry().with(SpanEvents::new());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before any span"); // nowhere to go
            let span = provider.tracer("t").start("process orders.*");
            let cx = Context::current_with_span(span);
            {
                let _attached = cx.clone().attach();
                tracing::info!(id = 42, ok = true, who = "me", "billing the order");
                tracing::info!(target: "x", parent: None, "a root event is a log line only");
                let _in_span = tracing::info_span!("a tracing span").entered();
                tracing::info!("left to tracing-opentelemetry");
            }
            cx.span().end();
        });
        let spans = exporter.get_finished_spans().unwrap();
        let events = &spans[0].events.events;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].name, "billing the order");
        let attr =
            |k: &str| events[0].attributes.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.clone());
        assert_eq!(attr("id"), Some(Value::I64(42)));
        assert_eq!(attr("ok"), Some(Value::Bool(true)));
        assert_eq!(attr("who"), Some(Value::from("me")));
        assert_eq!(attr("level"), Some(Value::from("INFO")));
    }
}
