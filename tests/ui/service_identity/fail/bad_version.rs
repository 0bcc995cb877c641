use nats_otel_runtime::{NatsService, service_name, service_version};

fn main() {
    let _ = NatsService::without_connection().name(service_name!("pricing")).version(service_version!("v1.2"));
}
