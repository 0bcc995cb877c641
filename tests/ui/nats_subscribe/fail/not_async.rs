use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.*")]
fn handler() {}

fn main() {
    // The function is kept, so the rest of the crate still compiles against it.
    handler();
}
