//! Ends 1000 spans through the providers `telemetry::init()` installs, as fast
//! as it can, then shuts them down: the dropped-spans test's child
//! (tests/otlp_export.rs), whose stderr it reads.

use opentelemetry::trace::{Span as _, Tracer as _};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _entered = runtime.enter();
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let tracer = opentelemetry::global::tracer("drop_spans");
    for _ in 0..1000 {
        tracer.start("burst").end();
    }
    drop(telemetry);
    Ok(())
}
