use nats_otel_runtime::{NatsService, service_name, service_version};

fn main() {
    let service = NatsService::without_connection()
        .name(service_name!("pricing-eu_2"))
        .version(service_version!("1.2.0-rc.1+build.5"));
    assert!(service.asyncapi().is_ok());
}
