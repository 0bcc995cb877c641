//! Ends a small trace through the providers `telemetry::init()` installs with
//! `OTEL_TRACES_EXPORTER=console`: the console test's child
//! (tests/telemetry_init.rs), whose stderr it reads.
//!
//! A span of the trace ends 50 ms after its root, as a broker's report or a
//! slower handler would; a marker line follows once the trace has had time to
//! settle, so the test sees whether the tree printed while the process ran.

use std::time::Duration;

use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let tracer = opentelemetry::global::tracer("console_trace");
    let mut late = tracer.in_span("checkout", |cx| {
        let _send = tracer.start_with_context("send orders.eu", &cx);
        cx.span().add_event("paid", vec![]);
        tracer.start_with_context("late report", &cx)
    });
    std::thread::sleep(Duration::from_millis(50));
    late.end();
    std::thread::sleep(Duration::from_millis(1500));
    eprintln!("-- settled --");
    drop(telemetry);
    Ok(())
}
