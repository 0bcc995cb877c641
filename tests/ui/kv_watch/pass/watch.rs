use nats_otel_runtime::prelude::*;

#[derive(Deserialize)]
struct Tenant {
    plan: String,
}

#[kv_watch(bucket = "config", key = "tenants.>")]
async fn on_tenant(entry: KvEntry<Json<Tenant>>) -> Result<(), ServiceError> {
    if let (KvOperation::Put, Some(Json(tenant))) = (entry.operation, entry.value) {
        let _ = (entry.key, entry.revision, tenant.plan);
    }
    Ok(())
}

#[kv_watch(bucket = "flags", history = "updates_only", trace = "link")]
async fn on_flag(entry: KvEntry<Bytes>, info: JetStreamInfo) {
    let _ = (entry.bucket, info.stream_sequence);
}

fn main() {
    let client: Option<async_nats::Client> = None;
    if let Some(client) = client {
        let _ = NatsService::new(client).handler(on_tenant).handler(on_flag);
    }
}
