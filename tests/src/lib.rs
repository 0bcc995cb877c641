//! The test kit: what integration tests (tests/) and their child processes
//! (src/bin) share beyond `nats_otel_runtime::testing`.

pub mod otlp;
pub mod rounds;
pub mod tls;
