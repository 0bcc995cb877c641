//! Queue-group scaling: two instances of the same service share the work of one
//! subject; each request is handled by exactly one of them. Then one instance
//! stops and the other takes everything.
//!
//! ```sh
//! cargo run -p examples --example queue_groups
//! ```

use std::collections::BTreeMap;

use nats_otel_runtime::prelude::*;

#[nats_subscribe("resize.image", queue = "resizers", concurrency = 8)]
async fn resize(Json(size): Json<u32>, State(instance): State<&'static str>) -> Json<(&'static str, u32)> {
    Json((instance, size / 2))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = examples::server()?;
    let mut instances = Vec::new();
    for name in ["instance-a", "instance-b"] {
        let client = async_nats::connect(&server.url).await?;
        instances.push(NatsService::new(client).state(name).handler(resize).start().await?.spawn());
    }

    let client = async_nats::connect(&server.url).await?;
    let publisher = Publisher::new(client);
    let mut handled = BTreeMap::<&str, u32>::new();
    for size in 0..200u32 {
        let (instance, _): (String, u32) = publisher.request_json("resize.image", &size).await?;
        *handled.entry(if instance == "instance-a" { "instance-a" } else { "instance-b" }).or_default() += 1;
    }
    println!("200 requests with both instances: {handled:?}");

    instances.remove(0).stop().await?;
    let mut after = BTreeMap::<String, u32>::new();
    for size in 0..50u32 {
        let (instance, _): (String, u32) = publisher.request_json("resize.image", &size).await?;
        *after.entry(instance).or_default() += 1;
    }
    println!("50 requests after instance-a stopped: {after:?}");
    for running in instances {
        running.stop().await?;
    }
    Ok(())
}
