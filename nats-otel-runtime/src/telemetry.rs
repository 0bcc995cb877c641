//! One call that sets up OpenTelemetry for an application (feature `telemetry`).
//!
//! [`init`] reads the standard environment, as every OpenTelemetry SDK does:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource (service name and attributes) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_…`/`…_METRICS_…`) | export traces and metrics over OTLP; without it nothing is exported, but contexts still propagate |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` (default) or `grpc` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (default `parentbased_always_on`) |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage` (default both) or `none` |
//! | `RUST_LOG` | what is logged to stderr (default `info`); spans are exported whatever it says |
//!
//! It installs the propagators, the tracer and meter providers (globally), and a
//! `tracing` subscriber that logs and bridges spans to OpenTelemetry. Keep the
//! returned [`Telemetry`] alive: dropping it flushes and shuts the providers down.
//! Applications with their own OpenTelemetry set-up skip this.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let _telemetry = nats_otel_runtime::telemetry::init()?;
//!     // … connect, run the service …
//!     Ok(())
//! }
//! ```

use std::fmt;

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Why [`init`] failed.
#[derive(Debug)]
pub struct TelemetryError(String);

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "telemetry set-up failed: {}", self.0)
    }
}

impl std::error::Error for TelemetryError {}

/// The installed providers; flushed and shut down on drop.
#[derive(Debug)]
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    resource: Resource,
    exporting: bool,
}

impl Telemetry {
    /// The resource spans and metrics are reported with.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The tracer provider.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Whether an OTLP endpoint was configured.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.tracer_provider.force_flush();
        let _ = self.meter_provider.force_flush();
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

/// Sets up OpenTelemetry and `tracing` from the environment (see the module docs).
///
/// Call it inside a Tokio runtime when exporting over `grpc`.
pub fn init() -> Result<Telemetry, TelemetryError> {
    let mut warnings = Vec::new();
    opentelemetry::global::set_text_map_propagator(propagators(&mut warnings));

    let resource = Resource::builder().build();
    let endpoint = |signal: &str| {
        std::env::var_os(format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))
            .or_else(|| std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .is_some_and(|v| !v.is_empty())
    };
    let grpc = match protocol().as_deref() {
        None | Some("http/protobuf") => false,
        Some("grpc") => true,
        Some(other) => {
            return Err(TelemetryError(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported; use `http/protobuf` or `grpc`"
            )));
        }
    };

    let mut traces = SdkTracerProvider::builder().with_resource(resource.clone());
    if endpoint("TRACES") {
        if grpc {
            let exporter = SpanExporter::builder().with_tonic().build().map_err(error)?;
            let processor =
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            traces = traces.with_span_processor(processor);
        } else {
            let exporter = SpanExporter::builder().with_http().build().map_err(error)?;
            traces = traces.with_batch_exporter(exporter);
        }
    }
    let tracer_provider = traces.build();

    let mut metrics = SdkMeterProvider::builder().with_resource(resource.clone());
    if endpoint("METRICS") {
        if grpc {
            let exporter = MetricExporter::builder().with_tonic().build().map_err(error)?;
            let reader =
                opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            metrics = metrics.with_reader(reader);
        } else {
            let exporter = MetricExporter::builder().with_http().build().map_err(error)?;
            metrics = metrics.with_periodic_exporter(exporter);
        }
    }
    let meter_provider = metrics.build();
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    if endpoint("METRICS") {
        // Without a reader, instruments would be created for nobody (and the SDK
        // logs an error per observable instrument); the no-op default is right.
        opentelemetry::global::set_meter_provider(meter_provider.clone());
    }

    let logs = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let tracer = tracer_provider.tracer("nats-otel");
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(logs))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(
            crate::otel::span_events::SpanEvents::new()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .try_init()
        .map_err(|e| TelemetryError(format!("a tracing subscriber is already installed ({e})")))?;
    for warning in warnings {
        tracing::warn!(target: crate::otel::TARGET, "{warning}");
    }
    let exporting = endpoint("TRACES") || endpoint("METRICS");
    Ok(Telemetry { tracer_provider, meter_provider, resource, exporting })
}

fn error(e: impl fmt::Display) -> TelemetryError {
    TelemetryError(e.to_string())
}

fn protocol() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .ok()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
}

/// The propagators `OTEL_PROPAGATORS` names; unknown names are warned about.
fn propagators(warnings: &mut Vec<String>) -> TextMapCompositePropagator {
    let configured = std::env::var("OTEL_PROPAGATORS").unwrap_or_else(|_| "tracecontext,baggage".to_owned());
    let mut chosen: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for name in configured.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "tracecontext" => {
                chosen.push(Box::new(crate::otel::trace_context::TraceContextPropagator::new()))
            }
            "baggage" => chosen.push(Box::new(BaggagePropagator::new())),
            "none" => return TextMapCompositePropagator::new(Vec::new()),
            other => warnings.push(format!(
                "OTEL_PROPAGATORS: `{other}` is not built in; install it yourself with \
                 `opentelemetry::global::set_text_map_propagator` (built in: tracecontext, baggage, none)"
            )),
        }
    }
    TextMapCompositePropagator::new(chosen)
}
