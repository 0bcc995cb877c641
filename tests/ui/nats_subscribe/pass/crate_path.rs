// A crate that re-exports nats-otel under another path.
mod reexport {
    pub use nats_otel_runtime as otel;
}

#[nats_otel_runtime::nats_subscribe("renamed", crate = "reexport::otel")]
async fn renamed() {}

fn main() {
    let _ = renamed;
}
