use nats_otel_runtime::prelude::*;

struct Db;

#[nats_subscribe("orders.*")]
async fn needs_db(State(_db): State<Db>) {}

fn service(client: async_nats::Client) -> NatsService<Db> {
    // A state that is not `Clone` cannot be handed to each message.
    NatsService::new(client).state(Db).handler(needs_db)
}

fn main() {}
