//! One call that sets up OpenTelemetry for an application (feature `telemetry`).
//!
//! [`init`] reads the standard environment, as every OpenTelemetry SDK does.
//! Every `OTEL_*` variable, and who reads it:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SDK_DISABLED` | `true`: no provider is installed, so nothing is recorded and nats-otel skips span work; logs and context propagation go on |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource (read by the SDK) |
//! | `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER` | `otlp` (default) or `none`; for traces also `console`: each trace printed as a tree on stderr once a local root of it has ended and no span of it has come for 250 ms, so late spans (broker reports, slower handlers) join the tree (the quickstart's view, for development); any other value fails `init` |
//! | `OTEL_LOGS_EXPORTER` | not read: logs go to stderr through `tracing` (`RUST_LOG`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `…_TRACES_ENDPOINT`, `…_METRICS_ENDPOINT` | export that signal over OTLP; without an endpoint nothing of it is exported, but contexts still propagate (read by opentelemetry-otlp) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL`, `…_METRICS_PROTOCOL` | per signal: `http/protobuf` (default), `http/json` or `grpc`; any other value fails `init` |
//! | `OTEL_EXPORTER_OTLP_HEADERS` (and per signal) | sent with every export (read by opentelemetry-otlp) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` (and per signal) | milliseconds one export may take (default 10000) |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION` (and per signal) | `none` only: compression is not built, any other value fails `init` |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE` (and per signal) | for an `https://` endpoint: the PEM file of CAs to trust, instead of the system's roots |
//! | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `…_CLIENT_KEY` (and per signal) | for an `https://` endpoint: the exporter's certificate chain and key (mutual TLS); both or neither |
//! | `OTEL_EXPORTER_OTLP_INSECURE` | not read: the endpoint's scheme decides (`https://` is TLS, `http://` plain text) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (default `parentbased_always_on`; read by the SDK) |
//! | `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`, … | span limits (read by the SDK) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `…_MAX_QUEUE_SIZE`, `…_MAX_EXPORT_BATCH_SIZE`, `…_EXPORT_TIMEOUT` | the batch span processor (read by the SDK): see *Dropped spans* below |
//! | `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_METRIC_EXPORT_TIMEOUT` | the periodic metric reader (read by the SDK) |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage` (default both) or `none`; any other (`b3`, `jaeger`, …) fails `init`, saying how to install it |
//! | `OTEL_SEMCONV_STABILITY_OPT_IN` | `messaging/dup` adds the pre-1.25 attribute names (read by nats-otel whether or not `init` runs) |
//! | `RUST_LOG` | what is logged to stderr (default `info`); spans are exported whatever it says |
//!
//! ## Dropped spans
//!
//! Spans wait in the batch span processor's queue (`OTEL_BSP_MAX_QUEUE_SIZE`,
//! default 2048) until the next export (every `OTEL_BSP_SCHEDULE_DELAY` ms,
//! default 5000, or as soon as `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512, are
//! waiting). When spans end faster than the collector takes them, the queue fills
//! and new spans are dropped: the SDK logs a WARN `BatchSpanProcessor.SpanDroppingStarted`
//! at the first drop and, at shutdown, one with the total
//! (`BatchSpanProcessor.SpansDropped` with `dropped_span_count`; over gRPC,
//! `BatchSpanProcessor.Shutdown` with `dropped_spans`). `init` sends these
//! warnings to stderr whatever `RUST_LOG` says. A larger queue absorbs bursts (it costs memory: a span is about 1 KiB
//! with nats-otel's attributes); a shorter delay and larger batches raise the
//! sustained rate; a sampler (`OTEL_TRACES_SAMPLER=parentbased_traceidratio`)
//! lowers what is recorded at all.
//!
//! ## What `init` installs
//!
//! It installs ring as rustls' process-wide crypto provider when none is (the
//! `telemetry` feature builds reqwest with rustls but no provider, so a reqwest
//! client built with its defaults elsewhere in the process needs one), the propagators, the tracer and meter providers (globally), and a
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

mod settings;
mod tls;

use std::error::Error as StdError;
use std::fmt;

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{
    MetricExporter, SpanExporter, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::fmt::format::Format;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use self::settings::{Export, Otlp, Propagator, Settings, Wire};
use crate::otel::log_context::LogContext;

/// Why [`init`] failed: what was wrong, and the error underneath when there is one
/// ([`source`](std::error::Error::source)).
#[derive(Debug)]
pub struct TelemetryError {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TelemetryError {
    fn config(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }

    fn with_source(message: impl Into<String>, source: impl StdError + Send + Sync + 'static) -> Self {
        Self { message: message.into(), source: Some(Box::new(source)) }
    }
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "telemetry set-up failed: {}", self.message)
    }
}

impl StdError for TelemetryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn StdError + 'static))
    }
}

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

    /// Whether a signal goes somewhere: an OTLP endpoint, or the console.
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

/// Sets up OpenTelemetry and `tracing` from the environment (see the module docs),
/// and logs (at INFO) where each signal goes.
///
/// Call it inside a Tokio runtime when exporting over `grpc`.
pub fn init() -> Result<Telemetry, TelemetryError> {
    let settings = Settings::from_env(|name| std::env::var(name).ok())?;
    // This feature builds reqwest with rustls but without a crypto provider
    // (ring comes with async-nats; a second one would mean another C build).
    // Other HTTP clients of the process built with reqwest's defaults need a
    // process-wide provider: ring, unless the application installed one.
    let _ = rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    opentelemetry::global::set_text_map_propagator(propagator(&settings.propagators));

    let resource = Resource::builder().build();
    let mut traces = SdkTracerProvider::builder().with_resource(resource.clone());
    if let Export::Otlp(otlp) = &settings.traces {
        traces = match otlp.wire {
            Wire::Grpc => {
                let mut exporter = SpanExporter::builder().with_tonic();
                if let Some(files) = &otlp.tls {
                    exporter = exporter.with_tls_config(tls::grpc(files)?);
                }
                let exporter = exporter.build().map_err(|e| exporter_error("traces", otlp, e))?;
                traces.with_span_processor(
                    opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                        exporter,
                        opentelemetry_sdk::runtime::Tokio,
                    )
                    .build(),
                )
            }
            wire => {
                let exporter = SpanExporter::builder()
                    .with_http()
                    .with_protocol(wire.http())
                    .with_http_client(tls::http_client(otlp.tls.as_ref(), otlp.timeout)?);
                traces.with_batch_exporter(exporter.build().map_err(|e| exporter_error("traces", otlp, e))?)
            }
        };
    }
    if let Export::Console = &settings.traces {
        let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
        traces = traces.with_simple_exporter(crate::otel::tree::TreeExporter::stderr().color(colours));
    }
    let tracer_provider = traces.build();

    let mut metrics = SdkMeterProvider::builder().with_resource(resource.clone());
    if let Export::Otlp(otlp) = &settings.metrics {
        metrics = match otlp.wire {
            Wire::Grpc => {
                let mut exporter = MetricExporter::builder().with_tonic();
                if let Some(files) = &otlp.tls {
                    exporter = exporter.with_tls_config(tls::grpc(files)?);
                }
                let exporter = exporter.build().map_err(|e| exporter_error("metrics", otlp, e))?;
                metrics.with_reader(
                    opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                        exporter,
                        opentelemetry_sdk::runtime::Tokio,
                    )
                    .build(),
                )
            }
            wire => {
                let exporter = MetricExporter::builder()
                    .with_http()
                    .with_protocol(wire.http())
                    .with_http_client(tls::http_client(otlp.tls.as_ref(), otlp.timeout)?);
                metrics
                    .with_periodic_exporter(exporter.build().map_err(|e| exporter_error("metrics", otlp, e))?)
            }
        };
    }
    let meter_provider = metrics.build();
    if !settings.disabled {
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    }
    if !settings.disabled && !settings.metrics.is_off() {
        // Without a reader, instruments would be created for nobody (and the SDK
        // logs an error per observable instrument); the no-op default is right.
        opentelemetry::global::set_meter_provider(meter_provider.clone());
    }

    let logs = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The SDK's warnings that spans were dropped, whatever `RUST_LOG` filters out.
    let dropped_spans = tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.target() == "opentelemetry_sdk"
            && metadata.name().starts_with("BatchSpanProcessor.")
            && *metadata.level() <= tracing::Level::WARN
    });
    let tracer = tracer_provider.tracer("nats-otel");
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colours)
                .event_format(LogContext::new(Format::default().with_ansi(colours)))
                .with_filter(logs.or(dropped_spans)),
        )
        .with((!settings.disabled).then(|| {
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        }))
        .with(
            crate::otel::span_events::SpanEvents::new()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .try_init()
        .map_err(|e| TelemetryError::with_source("a tracing subscriber is already installed", e))?;
    if settings.disabled {
        crate::otel::tracer::DISABLED_ON_PURPOSE.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(target: crate::otel::TARGET, "OTEL_SDK_DISABLED=true: no spans or metrics are recorded");
    } else {
        tracing::info!(
            target: crate::otel::TARGET,
            traces = %Destination(&settings.traces),
            metrics = %Destination(&settings.metrics),
            "telemetry initialised"
        );
        if settings.traces.is_off() {
            tracing::info!(
                target: crate::otel::TARGET,
                "to see traces, set OTEL_TRACES_EXPORTER=console (trees on stderr) or OTEL_EXPORTER_OTLP_ENDPOINT"
            );
        }
    }
    let exporting = !settings.disabled && (!settings.traces.is_off() || !settings.metrics.is_off());
    Ok(Telemetry { tracer_provider, meter_provider, resource, exporting })
}

/// Where a signal goes, for the start-up log line.
struct Destination<'a>(&'a Export);

impl fmt::Display for Destination<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Export::Off => f.write_str("not exported (no OTLP endpoint, or exporter `none`)"),
            Export::Console => f.write_str("printed to stderr as trees (`console`)"),
            Export::Otlp(otlp) => {
                write!(f, "{} over OTLP {}", otlp.endpoint, otlp.wire.name())?;
                match &otlp.tls {
                    Some(files) if files.certificate.is_some() => {
                        f.write_str(", TLS trusting the CA file")?
                    }
                    Some(_) => f.write_str(", TLS trusting the system's roots")?,
                    None => {}
                }
                if otlp.tls.as_ref().is_some_and(|files| files.client.is_some()) {
                    f.write_str(" with a client certificate")?;
                }
                Ok(())
            }
        }
    }
}

fn exporter_error(signal: &str, otlp: &Otlp, error: impl StdError + Send + Sync + 'static) -> TelemetryError {
    TelemetryError::with_source(
        format!("the {signal} exporter to {} ({}) cannot be built", otlp.endpoint, otlp.wire.name()),
        error,
    )
}

/// The propagators asked for, in their order.
fn propagator(chosen: &[Propagator]) -> TextMapCompositePropagator {
    let chosen = chosen
        .iter()
        .map(|propagator| -> Box<dyn TextMapPropagator + Send + Sync> {
            match propagator {
                Propagator::TraceContext => {
                    Box::new(crate::otel::trace_context::TraceContextPropagator::new())
                }
                Propagator::Baggage => Box::new(BaggagePropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(chosen)
}
