use nats_otel_runtime::prelude::*;

#[derive(Clone)]
struct Db;

#[nats_subscribe("orders.*")]
async fn needs_db(State(_db): State<Db>) {}

fn service(client: async_nats::Client) -> NatsService {
    // No `.state(Db)`: the error names the state type, `()`, and the fix.
    NatsService::new(client).handler(needs_db)
}

fn main() {}
