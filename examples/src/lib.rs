//! Shared set-up for the examples: a NATS server (yours via `NATS_URL`, or a
//! throwaway local one) and telemetry (OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, else traces printed as trees in the terminal).

use nats_otel_runtime::testing::{NatsServer, install_w3c_propagators};
use nats_otel_runtime::tree::TreeExporter;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A server for the example; a local one lives as long as this value.
#[derive(Debug)]
pub struct Server {
    /// The URL to connect to.
    pub url: String,
    _local: Option<NatsServer>,
}

/// `$NATS_URL`, or a throwaway nats-server on a free loopback port.
pub fn server() -> std::io::Result<Server> {
    match std::env::var("NATS_URL") {
        Ok(url) => Ok(Server { url, _local: None }),
        Err(_) => {
            let local = NatsServer::start()?;
            Ok(Server { url: local.url(), _local: Some(local) })
        }
    }
}

/// Telemetry for an example; flushes (and prints the trees) on drop.
#[derive(Debug)]
pub enum Telemetry {
    /// Exporting over OTLP.
    Otlp(nats_otel_runtime::telemetry::Telemetry),
    /// Printing finished traces to standard output.
    Terminal(SdkTracerProvider),
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Telemetry::Terminal(provider) = self {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

/// OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else trees in the terminal.
pub fn telemetry() -> Result<Telemetry, Box<dyn std::error::Error>> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        return Ok(Telemetry::Otlp(nats_otel_runtime::telemetry::init()?));
    }
    install_w3c_propagators();
    let provider =
        SdkTracerProvider::builder().with_simple_exporter(TreeExporter::stdout_plain().at_shutdown()).build();
    // nats-otel's spans go to the global provider; the layer bridges the
    // application's own `tracing` spans, and `SpanEvents` its events in handlers.
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("nats-otel-example")))
        .with(nats_otel_runtime::span_events::SpanEvents::new())
        .try_init()?;
    Ok(Telemetry::Terminal(provider))
}
