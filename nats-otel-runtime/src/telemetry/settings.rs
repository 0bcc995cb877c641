//! What the `OTEL_*` variables ask of [`init`](super::init), read once into
//! types: each rule of the specification is applied here, and tested without
//! touching the process environment.

use std::path::PathBuf;
use std::time::Duration;

use super::TelemetryError;

/// An OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Wire {
    /// The HTTP exporter's protocol (gRPC has its own exporter).
    pub(super) fn http(self) -> opentelemetry_otlp::Protocol {
        match self {
            Wire::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
            Wire::HttpProtobuf | Wire::Grpc => opentelemetry_otlp::Protocol::HttpBinary,
        }
    }

    /// The protocol's name in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Wire::Grpc => "grpc",
            Wire::HttpProtobuf => "http/protobuf",
            Wire::HttpJson => "http/json",
        }
    }
}

/// A signal exported over OTLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Otlp {
    pub(super) wire: Wire,
    /// As configured: the exporter derives the signal's path from it.
    pub(super) endpoint: String,
    /// Set when the endpoint is `https://`.
    pub(super) tls: Option<TlsFiles>,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub(super) timeout: Duration,
}

/// What trusts the collector and what the exporter shows it, beside the
/// system's roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TlsFiles {
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`: a PEM file of CAs to trust.
    pub(super) certificate: Option<PathBuf>,
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `…_CLIENT_KEY`, for mutual TLS.
    pub(super) client: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientIdentity {
    pub(super) certificate: PathBuf,
    pub(super) key: PathBuf,
}

/// What the environment asks of one signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Export {
    /// Nothing exported: `none`, or no endpoint.
    Off,
    Otlp(Otlp),
    /// Traces printed as trees on stderr (`console`), for development.
    Console,
}

impl Export {
    pub(super) fn is_off(&self) -> bool {
        matches!(self, Export::Off)
    }
}

/// A propagator `OTEL_PROPAGATORS` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Propagator {
    TraceContext,
    Baggage,
}

/// The exporter's default per-export timeout (the specification's 10 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the `OTEL_*` variables ask for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) disabled: bool,
    pub(super) traces: Export,
    pub(super) metrics: Export,
    pub(super) propagators: Vec<Propagator>,
}

/// Reads one signal's variables: `OTEL_EXPORTER_OTLP_{SIGNAL}_…` first, then
/// the shared `OTEL_EXPORTER_OTLP_…`.
struct Signal<'a, V> {
    name: &'a str,
    var: &'a V,
}

impl<V: Fn(&str) -> Option<String>> Signal<'_, V> {
    /// The variable that is set, and its value.
    fn get(&self, setting: &str) -> Option<(String, String)> {
        let specific = format!("OTEL_EXPORTER_OTLP_{}_{setting}", self.name);
        if let Some(value) = (self.var)(&specific) {
            return Some((specific, value));
        }
        let shared = format!("OTEL_EXPORTER_OTLP_{setting}");
        (self.var)(&shared).map(|value| (shared, value))
    }

    fn export(&self) -> Result<Export, TelemetryError> {
        let exporter = format!("OTEL_{}_EXPORTER", self.name);
        match (self.var)(&exporter).as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(Export::Off),
            Some("console") if self.name == "TRACES" => return Ok(Export::Console),
            Some(other) => {
                let choices =
                    if self.name == "TRACES" { "`otlp`, `console` or `none`" } else { "`otlp` or `none`" };
                return Err(TelemetryError::config(format!(
                    "{exporter}={other} is not supported; use {choices}"
                )));
            }
        }
        let Some((_, endpoint)) = self.get("ENDPOINT") else {
            return Ok(Export::Off);
        };
        let wire = match self.get("PROTOCOL") {
            None => Wire::HttpProtobuf,
            Some((_, protocol)) if protocol == "http/protobuf" => Wire::HttpProtobuf,
            Some((_, protocol)) if protocol == "http/json" => Wire::HttpJson,
            Some((_, protocol)) if protocol == "grpc" => Wire::Grpc,
            Some((name, other)) => {
                return Err(TelemetryError::config(format!(
                    "{name}={other} is not supported; use `http/protobuf`, `http/json` or `grpc`"
                )));
            }
        };
        if let Some((name, value)) = self.get("COMPRESSION").filter(|(_, value)| value != "none") {
            return Err(TelemetryError::config(format!(
                "{name}={value} is not supported: export is uncompressed (leave it unset or `none`)"
            )));
        }
        let timeout = match self.get("TIMEOUT") {
            None => DEFAULT_TIMEOUT,
            Some((name, value)) => value.parse().map(Duration::from_millis).map_err(|_| {
                TelemetryError::config(format!("{name}={value} is not a whole number of milliseconds"))
            })?,
        };
        let tls = endpoint.to_ascii_lowercase().starts_with("https://").then(|| self.tls()).transpose()?;
        Ok(Export::Otlp(Otlp { wire, endpoint, tls, timeout }))
    }

    fn tls(&self) -> Result<TlsFiles, TelemetryError> {
        let path = |setting| self.get(setting).map(|(name, value)| (name, PathBuf::from(value)));
        let client = match (path("CLIENT_CERTIFICATE"), path("CLIENT_KEY")) {
            (Some((_, certificate)), Some((_, key))) => Some(ClientIdentity { certificate, key }),
            (None, None) => None,
            (Some((name, _)), None) | (None, Some((name, _))) => {
                return Err(TelemetryError::config(format!(
                    "{name} is set without its pair: mutual TLS needs both \
                     OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
                )));
            }
        };
        Ok(TlsFiles { certificate: path("CERTIFICATE").map(|(_, path)| path), client })
    }
}

impl Settings {
    /// Reads the settings through `var` (the environment; a map in tests).
    pub(super) fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, TelemetryError> {
        let var =
            |name: &str| var(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
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
                    return Err(TelemetryError::config(format!(
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
            traces: Signal { name: "TRACES", var: &var }.export()?,
            metrics: Signal { name: "METRICS", var: &var }.export()?,
            propagators,
        })
    }
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

    fn wires(settings: &Settings) -> (Option<Wire>, Option<Wire>) {
        let wire = |export: &Export| match export {
            Export::Off | Export::Console => None,
            Export::Otlp(otlp) => Some(otlp.wire),
        };
        (wire(&settings.traces), wire(&settings.metrics))
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
        assert_eq!(wires(&read), (Some(Wire::Grpc), Some(Wire::HttpJson)));
        let Export::Otlp(traces) = &read.traces else { panic!("traces exported") };
        assert_eq!(traces.endpoint, "http://traces:4317");
        assert_eq!(traces.timeout, DEFAULT_TIMEOUT);

        // Only traces have an endpoint: metrics are off, whatever the protocol.
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(wires(&read), (Some(Wire::Grpc), None));

        // The shared protocol, overridden for one signal.
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://both"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!(wires(&read), (Some(Wire::Grpc), Some(Wire::HttpProtobuf)));
    }

    #[test]
    fn exporters_can_be_turned_off_per_signal_and_the_sdk_disabled() {
        let read =
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://both"), ("OTEL_METRICS_EXPORTER", "none")])
                .unwrap();
        assert_eq!(wires(&read), (Some(Wire::HttpProtobuf), None));
        assert!(settings(&[("OTEL_SDK_DISABLED", "TRUE")]).unwrap().disabled);
        assert!(!settings(&[("OTEL_SDK_DISABLED", "false")]).unwrap().disabled);
    }

    #[test]
    fn https_endpoints_take_their_certificates_per_signal() {
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/etc/metrics-ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client-key.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
        ])
        .unwrap();
        let (Export::Otlp(traces), Export::Otlp(metrics)) = (&read.traces, &read.metrics) else {
            panic!("both exported: {read:?}")
        };
        let client =
            Some(ClientIdentity { certificate: "/etc/client.pem".into(), key: "/etc/client-key.pem".into() });
        assert_eq!(
            traces.tls,
            Some(TlsFiles { certificate: Some("/etc/ca.pem".into()), client: client.clone() })
        );
        assert_eq!(metrics.tls, Some(TlsFiles { certificate: Some("/etc/metrics-ca.pem".into()), client }));
        assert_eq!((traces.timeout, metrics.timeout), (Duration::from_millis(2500), DEFAULT_TIMEOUT));

        // Plain-text endpoints have no TLS, whatever is set.
        let read = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ])
        .unwrap();
        let Export::Otlp(traces) = &read.traces else { panic!("traces exported") };
        assert_eq!(traces.tls, None);

        // System roots only.
        let read = settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "HTTPS://collector")]).unwrap();
        let Export::Otlp(traces) = &read.traces else { panic!("traces exported") };
        assert_eq!(traces.tls, Some(TlsFiles::default()));
    }

    #[test]
    fn what_is_not_supported_fails_naming_the_variable() {
        for (vars, says) in [
            (&[("OTEL_TRACES_EXPORTER", "zipkin")][..], "OTEL_TRACES_EXPORTER=zipkin"),
            (
                &[("OTEL_METRICS_EXPORTER", "console")][..],
                "OTEL_METRICS_EXPORTER=console is not supported; use `otlp` or `none`",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
                    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift"),
                ],
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=thrift",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
                "OTEL_EXPORTER_OTLP_COMPRESSION=gzip is not supported",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT=10s is not a whole number",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x"),
                    ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/k.pem"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY is set without its pair",
            ),
            (&[("OTEL_PROPAGATORS", "tracecontext,b3")], "`b3` is not built in"),
            (&[("OTEL_PROPAGATORS", "jaeger")], "opentelemetry-jaeger-propagator"),
        ] {
            let error = settings(vars).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        assert!(
            settings(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
            ])
            .is_ok()
        );
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
