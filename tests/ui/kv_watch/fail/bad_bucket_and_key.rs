use nats_otel_runtime::prelude::*;

#[kv_watch(bucket = "app.config", key = "tenants.{id}", history = "newest")]
async fn on_change(entry: KvEntry<Bytes>) {
    let _ = entry;
}

fn main() {}
