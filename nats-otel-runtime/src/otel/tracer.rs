//! Where nats-otel's spans go: the OpenTelemetry API, not the `tracing` bridge.
//!
//! Spans are started with the global tracer provider as it is when a service
//! starts or a publisher is made, so install it first (as
//! `telemetry::init` does, feature `telemetry`). Going through the API directly
//! is what the hand-written loop does, and costs a third of what the
//! `tracing-opentelemetry` layer spends per attribute (see BENCHMARKS.md). A
//! `tracing` subscriber is still welcome: while a handler runs, its `process`
//! span is the current OpenTelemetry context, so the handler's own `tracing`
//! spans become its children.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{SpanBuilder, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope};

/// The instrumentation scope of nats-otel's spans (and its meter's name).
pub const SCOPE_NAME: &str = "nats-otel";

/// The `opentelemetry` release nats-otel is built on: a provider installed
/// through another release is a different global, invisible here.
pub(crate) const OPENTELEMETRY_VERSION: &str = "0.33";

/// Set when OpenTelemetry is off on purpose (`OTEL_SDK_DISABLED`): no hint then.
pub(crate) static DISABLED_ON_PURPOSE: AtomicBool = AtomicBool::new(false);

/// Says once per process that spans go nowhere, and the likeliest reason when
/// the application did install a provider: another `opentelemetry` release.
fn no_provider_hint() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if DISABLED_ON_PURPOSE.load(Ordering::Relaxed) || SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    let hint = format!(
        "no OpenTelemetry tracer provider is installed for opentelemetry {OPENTELEMETRY_VERSION}, the release \
         nats-otel uses, so it records no spans (trace contexts still propagate). Install one with \
         `telemetry::init()` or `opentelemetry::global::set_tracer_provider` before starting services and \
         publishers. If you did, your opentelemetry crates are another release: \
         `cargo tree -d -i opentelemetry` shows two, and yours must be {OPENTELEMETRY_VERSION}"
    );
    if crate::otel::unheard::unheard() {
        eprintln!("nats-otel: {hint}");
    } else {
        tracing::info!(target: crate::otel::TARGET, "{hint}");
    }
}

/// A tracer that notices the API's no-op tracer, so that with no provider
/// installed nats-otel skips span work (extraction, attributes) altogether.
pub(crate) struct Tracer {
    tracer: BoxedTracer,
    off: AtomicBool,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("off", &self.is_off()).finish_non_exhaustive()
    }
}

impl Tracer {
    /// The tracer of the global provider, as it is now.
    pub(crate) fn resolve() -> Self {
        let scope = InstrumentationScope::builder(SCOPE_NAME).with_version(env!("CARGO_PKG_VERSION")).build();
        Self {
            tracer: opentelemetry::global::tracer_provider().tracer_with_scope(scope),
            off: AtomicBool::new(false),
        }
    }

    /// Whether spans go nowhere: callers skip building them.
    pub(crate) fn is_off(&self) -> bool {
        self.off.load(Ordering::Relaxed)
    }

    /// Starts a span as a child of `parent` (a root when it has no span), and
    /// gives the context that holds it.
    pub(crate) fn start(&self, builder: SpanBuilder, parent: &Context) -> Context {
        self.start_recording(builder, parent, |_| {})
    }

    /// Starts a span as [`start`](Self::start) does, and lets `record` add
    /// what the sampler need not see only when the span records: a span the
    /// sampler drops costs its decision and its context, not its attributes.
    pub(crate) fn start_recording(
        &self,
        builder: SpanBuilder,
        parent: &Context,
        record: impl FnOnce(&mut BoxedSpan),
    ) -> Context {
        use opentelemetry::trace::Span as _;
        let mut span = self.tracer.build_with_context(builder, parent);
        if is_noop(&span, parent) {
            self.off.store(true, Ordering::Relaxed);
            no_provider_hint();
        } else if span.is_recording() {
            record(&mut span);
        }
        parent.with_span(span)
    }
}

/// Whether `span` comes from the API's no-op tracer: every SDK gives a new span
/// its own span id, the no-op tracer hands back its parent's context (or none).
/// A span of a suppressed context is empty in the SDK too, so it proves nothing.
fn is_noop(span: &BoxedSpan, parent: &Context) -> bool {
    use opentelemetry::trace::Span as _;
    if parent.is_telemetry_suppressed() {
        return false;
    }
    let context = span.span_context();
    !context.is_valid() || (parent.has_active_span() && context == parent.span().span_context())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn remote_parent() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        ))
    }

    #[test]
    fn the_no_op_tracer_is_noticed_for_roots_and_children() {
        for parent in [Context::new(), remote_parent()] {
            let tracer = Tracer {
                tracer: BoxedTracer::new(Box::new(opentelemetry::trace::noop::NoopTracer::new())),
                off: AtomicBool::new(false),
            };
            tracer.start(SpanBuilder::from_name("x"), &parent);
            assert!(tracer.is_off());
        }
    }

    #[test]
    fn an_sdk_tracer_is_on_even_when_it_samples_nothing() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
            .build();
        for parent in [Context::new(), remote_parent()] {
            let tracer = Tracer {
                tracer: BoxedTracer::new(Box::new(provider.tracer("test"))),
                off: AtomicBool::new(false),
            };
            tracer.start(SpanBuilder::from_name("x"), &parent);
            assert!(!tracer.is_off());
        }
    }

    /// The hint names the release this crate is built on: the workspace's.
    #[test]
    fn the_named_opentelemetry_release_is_the_one_built() {
        let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .unwrap_or_default();
        let declared = format!("opentelemetry = \"{OPENTELEMETRY_VERSION}\"");
        assert!(manifest.contains(&declared), "the workspace declares {declared}");
    }
}
