use nats_otel_runtime::{Service, service_name, service_version};

fn main() {
    let _ = Service::without_connection().name(service_name!("pricing.eu")).version(service_version!("1.2.0"));
}
