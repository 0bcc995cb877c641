//! Ends a small trace through the providers `telemetry::init()` installs with
//! `OTEL_TRACES_EXPORTER=console`: the console test's child
//! (tests/telemetry_init.rs), whose stderr it reads.

use opentelemetry::trace::{TraceContextExt as _, Tracer as _};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let tracer = opentelemetry::global::tracer("console_trace");
    tracer.in_span("checkout", |cx| {
        let _send = tracer.start_with_context("send orders.eu", &cx);
        cx.span().add_event("paid", vec![]);
    });
    drop(telemetry);
    Ok(())
}
