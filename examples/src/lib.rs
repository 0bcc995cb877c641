//! Shared set-up for the examples: a NATS server (yours via `NATS_URL`, or a
//! throwaway local one). Telemetry is the library's own `telemetry::init()`.

use nats_otel_runtime::testing::NatsServer;

/// A server for the example; a local one lives as long as this value.
#[derive(Debug)]
pub struct Server {
    /// The URL to connect to.
    pub url: String,
    _local: Option<NatsServer>,
}

/// `$NATS_URL`, or a throwaway nats-server on a free loopback port.
pub fn server() -> std::io::Result<Server> {
    match std::env::var("NATS_URL") {
        Ok(url) => Ok(Server { url, _local: None }),
        Err(_) => {
            let local = NatsServer::start()?;
            Ok(Server { url: local.url(), _local: Some(local) })
        }
    }
}
