//! The AsyncAPI 3.0 documents of the quickstart, JetStream and batch examples'
//! services, as JSON on stdout, built without a NATS server.
//!
//! ```sh
//! cargo run -p examples --example asyncapi                # both, as a JSON array
//! cargo run -p examples --example asyncapi -- quickstart  # one: quickstart, orders or warehouse
//! ```
//!
//! Each example defines its service in one function, used both to serve and
//! here, with `NatsService::without_connection()`: the document describes exactly
//! what the example serves. A running named service also answers
//! `$SRV.ASYNCAPI.<name>` with it (`nats req '$SRV.ASYNCAPI.quickstart' ''`).

use nats_otel_runtime::NatsService;
use nats_otel_runtime::asyncapi::AsyncApi;

#[path = "quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

#[path = "jetstream_orders.rs"]
#[allow(dead_code)]
mod orders;

#[path = "batch_handler.rs"]
#[allow(dead_code)]
mod warehouse;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let documents: Vec<(&str, AsyncApi)> = vec![
        ("quickstart", quickstart::service(NatsService::without_connection()).asyncapi()?),
        ("orders", orders::service(NatsService::without_connection()).asyncapi()?),
        ("warehouse", warehouse::service(NatsService::without_connection(), Default::default()).asyncapi()?),
    ];
    match std::env::args().nth(1) {
        None => {
            let all: Vec<&AsyncApi> = documents.iter().map(|(_, document)| document).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Some(wanted) => match documents.iter().find(|(name, _)| *name == wanted) {
            Some((_, document)) => println!("{document}"),
            None => {
                let names: Vec<&str> = documents.iter().map(|(name, _)| *name).collect();
                return Err(format!("no service `{wanted}`: choose one of {names:?}").into());
            }
        },
    }
    Ok(())
}
