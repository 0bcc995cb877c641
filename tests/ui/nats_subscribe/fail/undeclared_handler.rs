use nats_otel_runtime::prelude::*;

async fn plain(_body: Bytes) {}

fn main() {
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(plain);
    }
}
