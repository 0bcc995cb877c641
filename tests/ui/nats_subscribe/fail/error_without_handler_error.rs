use nats_otel_runtime::prelude::*;

#[derive(Debug)]
struct BillingError;

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("billing failed")
    }
}

#[nats_subscribe("orders.*")]
async fn handler() -> Result<(), BillingError> {
    Ok(())
}

fn main() {}
