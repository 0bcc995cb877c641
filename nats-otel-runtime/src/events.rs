//! Connection events, fanned out to whoever needs them.
//!
//! async-nats reports some failures only through the connection's event callback:
//! a permissions violation on a subscription, slow consumers, reconnects. Wire
//! [`ClientEvents`] into the connect options and hand it to the [`Service`](crate::Service),
//! and a subscription the server refuses ends `run_until` with an error naming the
//! handler and subject instead of a silent, message-less subscription.

use async_nats::{ConnectOptions, Event, ServerError};
use tokio::sync::broadcast;

/// How many events are buffered for a slow reader before it misses some.
const CAPACITY: usize = 256;

/// A fan-out of a connection's [`Event`]s.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use nats_otel_runtime::{ClientEvents, Service};
///
/// let events = ClientEvents::new();
/// let client = events.attach(async_nats::ConnectOptions::new()).connect("nats://127.0.0.1:4222").await?;
/// let service = Service::new(client).events(&events);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientEvents {
    sender: broadcast::Sender<Event>,
}

impl Default for ClientEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientEvents {
    /// A fan-out with no listeners yet.
    pub fn new() -> Self {
        Self { sender: broadcast::channel(CAPACITY).0 }
    }

    /// Sets the options' event callback to feed this fan-out. To keep a callback of
    /// your own, call [`forward`](Self::forward) from it instead.
    pub fn attach(&self, options: ConnectOptions) -> ConnectOptions {
        let events = self.clone();
        options.event_callback(move |event| {
            events.forward(event);
            async {}
        })
    }

    /// Passes one event to every listener.
    pub fn forward(&self, event: Event) {
        // No listener is not an error: nobody asked.
        let _ = self.sender.send(event);
    }

    /// A new listener, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

/// The subject of a subscription the server refused, from its error text
/// (`Permissions Violation for Subscription to "orders.>"`).
pub(crate) fn refused_subscription(event: &Event) -> Option<&str> {
    let Event::ServerError(ServerError::Other(text)) = event else { return None };
    let rest = text.strip_prefix("Permissions Violation for Subscription to ")?;
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_subscriptions_are_recognised() {
        let event = |s: &str| Event::ServerError(ServerError::Other(s.to_owned()));
        assert_eq!(
            refused_subscription(&event(r#"Permissions Violation for Subscription to "orders.>""#)),
            Some("orders.>")
        );
        assert_eq!(
            refused_subscription(&event(
                r#"Permissions Violation for Subscription to "orders.*" using queue "billing""#
            )),
            Some("orders.*")
        );
        assert_eq!(refused_subscription(&event(r#"Permissions Violation for Publish to "x""#)), None);
        assert_eq!(refused_subscription(&Event::Connected), None);
    }
}
