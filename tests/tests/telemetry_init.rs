//! `telemetry::init()` honours the standard OpenTelemetry environment. A binary of
//! its own: it installs process-global providers and the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)] // `std::env::set_var`, before anything reads the environment.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[tokio::test]
async fn init_reads_service_name_sampler_propagators_and_exporter_from_the_environment() {
    for (key, value) in [
        ("OTEL_SERVICE_NAME", "checkout"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,team=payments"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_PROPAGATORS", "tracecontext"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("RUST_LOG", "warn"),
    ] {
        // SAFETY: first thing this single-test binary does.
        unsafe { std::env::set_var(key, value) };
    }
    let telemetry = nats_otel_runtime::telemetry::init().expect("init");
    assert!(telemetry.is_exporting());

    let resource = telemetry.resource();
    let get =
        |key: &'static str| resource.get(&opentelemetry::Key::from_static_str(key)).map(|v| v.to_string());
    assert_eq!(get("service.name").as_deref(), Some("checkout"));
    assert_eq!(get("team").as_deref(), Some("payments"));
    assert_eq!(get("deployment.environment.name").as_deref(), Some("test"));

    // Only the W3C trace-context propagator: no baggage field.
    // The composite propagator reports its fields from a set: compare them sorted.
    let mut fields: Vec<String> =
        opentelemetry::global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect());
    fields.sort();
    assert_eq!(fields, ["traceparent", "tracestate"]);

    // always_off: spans exist (context propagates) but are not sampled; RUST_LOG=warn
    // does not filter the OpenTelemetry layer.
    let span = tracing::info_span!("checkout");
    let context = span.context();
    let span_context = context.span().span_context().clone();
    assert!(span_context.is_valid(), "spans are created whatever RUST_LOG says");
    assert!(!span_context.is_sampled(), "OTEL_TRACES_SAMPLER=always_off");

    // A second init is a clear error, not a panic.
    let again = nats_otel_runtime::telemetry::init().unwrap_err();
    assert!(again.to_string().contains("already installed"), "{again}");
    drop(telemetry);
}

/// `OTEL_TRACES_EXPORTER=console`: the library prints each trace as a tree on
/// stderr (the quickstart's view), children indented under their parent, and
/// says so at start. A span that ends shortly after the root joins the same
/// tree, and the tree prints while the process runs, not only at shutdown.
#[test]
fn the_console_exporter_prints_traces_as_trees_on_stderr() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_console_trace"))
        .env("OTEL_TRACES_EXPORTER", "console")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("traces=printed to stderr as trees"), "init says where traces go: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let root = lines.iter().position(|l| l.trim_start().starts_with("checkout [INTERNAL]")).expect(&stderr);
    let child =
        lines.iter().position(|l| l.trim_start().starts_with("send orders.eu [INTERNAL]")).expect(&stderr);
    assert!(child > root, "{stderr}");
    let indent = |line: &str| line.len() - line.trim_start().len();
    assert!(indent(lines[child]) > indent(lines[root]), "the child is indented under its parent: {stderr}");
    assert!(stderr.contains("· paid"), "events are shown: {stderr}");
    let late =
        lines.iter().position(|l| l.trim_start().starts_with("late report [INTERNAL]")).expect(&stderr);
    assert!(indent(lines[late]) > indent(lines[root]), "the late span is in the root's tree: {stderr}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("trace ")).count(), 1, "one tree: {stderr}");
    let settled = lines.iter().position(|l| *l == "-- settled --").expect(&stderr);
    assert!(late < settled, "the tree printed once the trace settled, before shutdown: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colours when stderr is not a terminal: {stderr}");
}
