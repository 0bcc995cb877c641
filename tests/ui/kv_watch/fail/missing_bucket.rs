use nats_otel_runtime::prelude::*;

#[kv_watch(key = "tenants.>")]
async fn on_change(entry: KvEntry<Bytes>) {
    let _ = entry;
}

fn main() {}
