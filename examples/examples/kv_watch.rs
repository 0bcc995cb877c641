//! A key-value watch: feature flags kept current in memory. Each put, delete
//! and purge of `checkout.*` reaches the handler once, in order, typed through
//! the JSON codec, in a span with the key, operation and revision.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p examples --example kv_watch
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use nats_otel_runtime::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct Flag {
    on: bool,
}

/// The flags as the bucket holds them.
#[derive(Clone, Default)]
struct Flags(Arc<Mutex<BTreeMap<String, bool>>>);

/// Current flags first (`history = "latest"`), then every change.
#[kv_watch(bucket = "flags", key = "checkout.*")]
async fn on_flag(State(flags): State<Flags>, entry: KvEntry<Json<Flag>>) {
    let mut flags = flags.0.lock().unwrap_or_else(PoisonError::into_inner);
    match entry.value {
        Some(Json(flag)) => flags.insert(entry.key, flag.on),
        None => flags.remove(&entry.key), // deleted or purged
    };
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = nats_otel_runtime::telemetry::init()?;
    let server = examples::server()?;
    let client = async_nats::connect(&server.url).await?;
    let store = jetstream::new(client.clone())
        .create_key_value(kv::Config { bucket: "flags".into(), history: 5, ..Default::default() })
        .await?;
    store.put("checkout.new_ui", serde_json::to_vec(&Flag { on: false })?.into()).await?;

    let flags = Flags::default();
    let running = NatsService::with_state(client, flags.clone()).handler(on_flag).start().await?.spawn();
    store.put("checkout.new_ui", serde_json::to_vec(&Flag { on: true })?.into()).await?;
    store.put("checkout.express", serde_json::to_vec(&Flag { on: true })?.into()).await?;
    store.delete("checkout.express").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("flags: {:?}", flags.0.lock().unwrap_or_else(PoisonError::into_inner));
    running.stop().await?;
    drop(telemetry);
    Ok(())
}
