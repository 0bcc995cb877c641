//! A service with no `tracing` subscriber receiving messages its handler
//! rejects: the unheard-failures test's child (tests/log_levels.rs), whose
//! stderr it reads. Connects to `NATS_URL`.

use nats_otel_runtime::prelude::*;

#[nats_subscribe("orders.{id}")]
async fn order(id: u32) {
    let _ = id;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = async_nats::connect(std::env::var("NATS_URL")?).await?;
    let running = NatsService::new(client.clone()).handler(order).start().await?.spawn();
    for id in ["seven", "eight", "nine", "ten"] {
        client.publish(format!("orders.{id}"), "".into()).await?;
    }
    client.flush().await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    running.stop().await?;
    Ok(())
}
