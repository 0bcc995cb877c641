//! One call that sets up OpenTelemetry for an application (feature `telemetry`).
//!
//! [`init`] reads the standard environment, as every OpenTelemetry SDK does.
//! Every `OTEL_*` variable, and who reads it:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SDK_DISABLED` | `true`: no provider is installed, so nothing is recorded and nats-otel skips span work; logs and context propagation go on |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource (read by the SDK) |
//! | `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER` | `otlp` (default) or `none`; any other value fails `init` |
//! | `OTEL_LOGS_EXPORTER` | not read: logs go to stderr through `tracing` (`RUST_LOG`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `…_TRACES_ENDPOINT`, `…_METRICS_ENDPOINT` | export that signal over OTLP; without an endpoint nothing of it is exported, but contexts still propagate (read by opentelemetry-otlp) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL`, `…_METRICS_PROTOCOL` | per signal: `http/protobuf` (default), `http/json` or `grpc`; any other value fails `init` |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT` (and per signal) | read by opentelemetry-otlp |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION` (and per signal) | not built: setting it fails `init` |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_CLIENT_KEY`, `…_CLIENT_CERTIFICATE`, `…_INSECURE` | not supported yet: export is over plain `http://` only |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (default `parentbased_always_on`; read by the SDK) |
//! | `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`, … | span limits (read by the SDK) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `…_MAX_QUEUE_SIZE`, `…_MAX_EXPORT_BATCH_SIZE`, `…_EXPORT_TIMEOUT` | the batch span processor (read by the SDK); a full queue drops spans |
//! | `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_METRIC_EXPORT_TIMEOUT` | the periodic metric reader (read by the SDK) |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage` (default both) or `none`; any other (`b3`, `jaeger`, …) fails `init`, saying how to install it |
//! | `OTEL_SEMCONV_STABILITY_OPT_IN` | `messaging/dup` adds the pre-1.25 attribute names (read by nats-otel whether or not `init` runs) |
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
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig as _};
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
    let settings = Settings::from_env(|name| std::env::var(name).ok())?;
    opentelemetry::global::set_text_map_propagator(settings.propagator());

    let resource = Resource::builder().build();
    let mut traces = SdkTracerProvider::builder().with_resource(resource.clone());
    match settings.traces {
        Export::Off => {}
        Export::Otlp(Wire::Grpc) => {
            let exporter = SpanExporter::builder().with_tonic().build().map_err(error)?;
            let processor =
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            traces = traces.with_span_processor(processor);
        }
        Export::Otlp(wire) => {
            let exporter =
                SpanExporter::builder().with_http().with_protocol(wire.http()).build().map_err(error)?;
            traces = traces.with_batch_exporter(exporter);
        }
    }
    let tracer_provider = traces.build();

    let mut metrics = SdkMeterProvider::builder().with_resource(resource.clone());
    match settings.metrics {
        Export::Off => {}
        Export::Otlp(Wire::Grpc) => {
            let exporter = MetricExporter::builder().with_tonic().build().map_err(error)?;
            let reader =
                opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            metrics = metrics.with_reader(reader);
        }
        Export::Otlp(wire) => {
            let exporter =
                MetricExporter::builder().with_http().with_protocol(wire.http()).build().map_err(error)?;
            metrics = metrics.with_periodic_exporter(exporter);
        }
    }
    let meter_provider = metrics.build();
    if !settings.disabled {
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    }
    if !settings.disabled && settings.metrics != Export::Off {
        // Without a reader, instruments would be created for nobody (and the SDK
        // logs an error per observable instrument); the no-op default is right.
        opentelemetry::global::set_meter_provider(meter_provider.clone());
    }

    let logs = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let tracer = tracer_provider.tracer("nats-otel");
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(logs))
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
        .map_err(|e| TelemetryError(format!("a tracing subscriber is already installed ({e})")))?;
    if settings.disabled {
        tracing::info!(target: crate::otel::TARGET, "OTEL_SDK_DISABLED=true: no spans or metrics are recorded");
    }
    let exporting = !settings.disabled && (settings.traces != Export::Off || settings.metrics != Export::Off);
    Ok(Telemetry { tracer_provider, meter_provider, resource, exporting })
}

/// An OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Wire {
    /// The HTTP exporter's protocol (gRPC has its own exporter).
    fn http(self) -> opentelemetry_otlp::Protocol {
        match self {
            Wire::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
            Wire::HttpProtobuf | Wire::Grpc => opentelemetry_otlp::Protocol::HttpBinary,
        }
    }
}

/// What the environment asks of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    /// Nothing exported: `none`, or no endpoint.
    Off,
    Otlp(Wire),
}

/// A propagator `OTEL_PROPAGATORS` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagator {
    TraceContext,
    Baggage,
}

/// What the `OTEL_*` variables ask for, read once by [`init`].
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    disabled: bool,
    traces: Export,
    metrics: Export,
    propagators: Vec<Propagator>,
}

impl Settings {
    /// Reads the settings through `var` (the environment; a map in tests).
    fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, TelemetryError> {
        let var =
            |name: &str| var(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let signal = |signal: &str| -> Result<Export, TelemetryError> {
            let exporter = format!("OTEL_{signal}_EXPORTER");
            match var(&exporter).as_deref() {
                None | Some("otlp") => {}
                Some("none") => return Ok(Export::Off),
                Some(other) => {
                    return Err(TelemetryError(format!(
                        "{exporter}={other} is not supported; use `otlp` or `none`"
                    )));
                }
            }
            let endpoint = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
            if var(&endpoint).or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT")).is_none() {
                return Ok(Export::Off);
            }
            let specific = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
            let (name, protocol) = match var(&specific) {
                Some(protocol) => (specific, Some(protocol)),
                None => ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), var("OTEL_EXPORTER_OTLP_PROTOCOL")),
            };
            let wire = match protocol.as_deref() {
                None | Some("http/protobuf") => Wire::HttpProtobuf,
                Some("http/json") => Wire::HttpJson,
                Some("grpc") => Wire::Grpc,
                Some(other) => {
                    return Err(TelemetryError(format!(
                        "{name}={other} is not supported; use `http/protobuf`, `http/json` or `grpc`"
                    )));
                }
            };
            Ok(Export::Otlp(wire))
        };
        let configured = var("OTEL_PROPAGATORS").unwrap_or_else(|| "tracecontext,baggage".to_owned());
        let mut propagators = Vec::new();
        for name in configured.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match name {
                "tracecontext" => propagators.push(Propagator::TraceContext),
                "baggage" => propagators.push(Propagator::Baggage),
                "none" => {
                    propagators.clear();
                    break;
                }
                other => {
                    return Err(TelemetryError(format!(
                        "OTEL_PROPAGATORS: `{other}` is not built in (built in: tracecontext, baggage, none). \
                         Leave it out, and after `init` install its propagator with \
                         `opentelemetry::global::set_text_map_propagator` (b3: the `opentelemetry-zipkin` \
                         crate; jaeger: `opentelemetry-jaeger-propagator`), in a \
                         `TextMapCompositePropagator` with `nats_otel_runtime::trace_context::TraceContextPropagator`"
                    )));
                }
            }
        }
        Ok(Self {
            disabled: var("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")),
            traces: signal("TRACES")?,
            metrics: signal("METRICS")?,
            propagators,
        })
    }

    /// The propagators asked for, in their order.
    fn propagator(&self) -> TextMapCompositePropagator {
        let chosen = self
            .propagators
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
}

fn error(e: impl fmt::Display) -> TelemetryError {
    TelemetryError(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_env(|name| vars.get(name).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn nothing_set_exports_nothing_and_propagates_w3c() {
        let read = settings(&[]).unwrap();
        assert_eq!(
            read,
            Settings {
                disabled: false,
                traces: Export::Off,
                metrics: Export::Off,
                propagators: vec![Propagator::TraceContext, Propagator::Baggage],
            }
        );
    }

    #[test]
    fn each_signal_has_its_own_endpoint_and_protocol() {
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4318/v1/metrics"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ])
        .unwrap();
        assert_eq!((read.traces, read.metrics), (Export::Otlp(Wire::Grpc), Export::Otlp(Wire::HttpJson)));

        // Only traces have an endpoint: metrics are off, whatever the protocol.
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!((read.traces, read.metrics), (Export::Otlp(Wire::Grpc), Export::Off));

        // The shared protocol, overridden for one signal.
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://both"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!((read.traces, read.metrics), (Export::Otlp(Wire::Grpc), Export::Otlp(Wire::HttpProtobuf)));
    }

    #[test]
    fn exporters_can_be_turned_off_per_signal_and_the_sdk_disabled() {
        let read =
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://both"), ("OTEL_METRICS_EXPORTER", "none")])
                .unwrap();
        assert_eq!((read.traces, read.metrics), (Export::Otlp(Wire::HttpProtobuf), Export::Off));
        assert!(settings(&[("OTEL_SDK_DISABLED", "TRUE")]).unwrap().disabled);
        assert!(!settings(&[("OTEL_SDK_DISABLED", "false")]).unwrap().disabled);
    }

    #[test]
    fn what_is_not_supported_fails_naming_the_variable() {
        for (vars, says) in [
            (&[("OTEL_TRACES_EXPORTER", "zipkin")][..], "OTEL_TRACES_EXPORTER=zipkin"),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
                    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift"),
                ],
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=thrift",
            ),
            (&[("OTEL_PROPAGATORS", "tracecontext,b3")], "`b3` is not built in"),
            (&[("OTEL_PROPAGATORS", "jaeger")], "opentelemetry-jaeger-propagator"),
        ] {
            let error = settings(vars).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn none_clears_the_propagators() {
        assert!(settings(&[("OTEL_PROPAGATORS", "none")]).unwrap().propagators.is_empty());
        assert_eq!(
            settings(&[("OTEL_PROPAGATORS", " baggage ")]).unwrap().propagators,
            [Propagator::Baggage]
        );
    }
}
