//! Connection events, fanned out to whoever needs them.
//!
//! async-nats reports some failures only through the connection's event callback:
//! a permissions violation on a subscription, slow consumers, reconnects. Wire
//! [`ClientEvents`] into the connect options and hand it to the [`NatsService`](crate::NatsService),
//! and a subscription the server refuses ends `run_until` with an error naming the
//! handler and subject instead of a silent, message-less subscription.
//!
//! Publishes are the same: the server drops a message the connection may not
//! publish and says so only with an asynchronous error. With
//! [`Publisher::events`](crate::Publisher::events), requests and JetStream
//! publishes to a denied subject fail at once with a `PermissionDenied` error
//! naming the subject (instead of timing out), and fire-and-forget publishes to a
//! subject the server has recently denied return that error too. Every violation
//! is also available typed, from [`PermissionViolation::from_event`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event, ServerError};
use tokio::sync::broadcast;

/// How many events are buffered for a slow reader before it misses some.
const CAPACITY: usize = 256;

/// How long a denied publish subject is remembered after the server last said so.
pub(crate) const DENIAL_MEMORY: Duration = Duration::from_secs(60);

/// At most this many denied subjects are remembered (the oldest are forgotten).
const MAX_DENIALS: usize = 1024;

/// A fan-out of a connection's [`Event`]s.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use nats_otel_runtime::{ClientEvents, NatsService};
///
/// let events = ClientEvents::new();
/// let client = events.attach(async_nats::ConnectOptions::new()).connect("nats://127.0.0.1:4222").await?;
/// let service = NatsService::new(client).events(&events);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientEvents {
    sender: broadcast::Sender<Event>,
    denied: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Default for ClientEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientEvents {
    /// A fan-out with no listeners yet.
    pub fn new() -> Self {
        Self { sender: broadcast::channel(CAPACITY).0, denied: Arc::default() }
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
        if let Some(PermissionViolation::Publish { subject }) = PermissionViolation::from_event(&event)
            && let Ok(mut denied) = self.denied.lock()
        {
            let now = Instant::now();
            if denied.len() >= MAX_DENIALS {
                denied.retain(|_, at| now.duration_since(*at) < DENIAL_MEMORY);
            }
            if denied.len() >= MAX_DENIALS
                && let Some(oldest) = denied.iter().min_by_key(|(_, at)| **at).map(|(s, _)| s.clone())
            {
                denied.remove(&oldest);
            }
            denied.insert(subject, now);
        }
        // No listener is not an error: nobody asked.
        let _ = self.sender.send(event);
    }

    /// Whether the server denied a publish to `subject` within the last minute.
    pub(crate) fn recently_denied(&self, subject: &str) -> bool {
        self.denied
            .lock()
            .ok()
            .and_then(|denied| denied.get(subject).map(|at| at.elapsed() < DENIAL_MEMORY))
            .unwrap_or(false)
    }

    /// Completes when the server reports a publish to `subject` denied, after this
    /// call; pending forever otherwise.
    pub(crate) fn denial(&self, subject: &str) -> impl Future<Output = ()> + Send + 'static {
        let mut events = self.subscribe();
        let subject = subject.to_owned();
        async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if let Some(PermissionViolation::Publish { subject: denied }) =
                            PermissionViolation::from_event(&event)
                            && denied == subject
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        }
    }

    /// A new listener, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

/// A permissions violation the server reported, typed.
///
/// nats-server answers a publish or subscription the connection's permissions do
/// not allow with an asynchronous `-ERR` (the connection stays open); async-nats
/// hands it to the event callback as text. This reads that text.
///
/// ```
/// use async_nats::{Event, ServerError};
/// use nats_otel_runtime::events::PermissionViolation;
///
/// let event = Event::ServerError(ServerError::Other(
///     r#"Permissions Violation for Publish to "orders.secret""#.to_owned(),
/// ));
/// assert_eq!(
///     PermissionViolation::from_event(&event),
///     Some(PermissionViolation::Publish { subject: "orders.secret".to_owned() })
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PermissionViolation {
    /// The connection may not publish to `subject`: the message was dropped.
    Publish {
        /// The denied subject.
        subject: String,
    },
    /// The connection may not subscribe to `subject` (in `queue`, when given).
    Subscribe {
        /// The denied subject.
        subject: String,
        /// The queue group of the refused subscription.
        queue: Option<String>,
    },
}

impl PermissionViolation {
    /// The violation an event reports, if it reports one.
    pub fn from_event(event: &Event) -> Option<Self> {
        let Event::ServerError(ServerError::Other(text)) = event else { return None };
        if let Some(rest) = text.strip_prefix("Permissions Violation for Publish to ") {
            let (subject, _) = quoted(rest)?;
            return Some(Self::Publish { subject });
        }
        let rest = text.strip_prefix("Permissions Violation for Subscription to ")?;
        let (subject, rest) = quoted(rest)?;
        let queue = match rest.strip_prefix(" using queue ") {
            Some(queue) => Some(quoted(queue)?.0),
            None => None,
        };
        Some(Self::Subscribe { subject, queue })
    }

    /// The subject the server refused.
    pub fn subject(&self) -> &str {
        match self {
            Self::Publish { subject } | Self::Subscribe { subject, .. } => subject,
        }
    }
}

/// A leading Go-quoted string (`%q`, as nats-server formats subjects): its value
/// and the rest. Only the escapes a valid subject can need (`\"`, `\\`) are
/// decoded; anything else is kept as written.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, body.get(i + 1..).unwrap_or(""))),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            c => value.push(c),
        }
    }
    None
}

/// The subject of a subscription the server refused, from its error text
/// (`Permissions Violation for Subscription to "orders.>"`).
pub(crate) fn refused_subscription(event: &Event) -> Option<String> {
    match PermissionViolation::from_event(event)? {
        PermissionViolation::Subscribe { subject, .. } => Some(subject),
        PermissionViolation::Publish { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_subscriptions_are_recognised() {
        let event = |s: &str| Event::ServerError(ServerError::Other(s.to_owned()));
        assert_eq!(
            refused_subscription(&event(r#"Permissions Violation for Subscription to "orders.>""#))
                .as_deref(),
            Some("orders.>")
        );
        assert_eq!(
            PermissionViolation::from_event(&event(
                r#"Permissions Violation for Subscription to "orders.*" using queue "billing""#
            )),
            Some(PermissionViolation::Subscribe {
                subject: "orders.*".to_owned(),
                queue: Some("billing".to_owned())
            })
        );
        assert_eq!(refused_subscription(&event(r#"Permissions Violation for Publish to "x""#)), None);
        assert_eq!(refused_subscription(&Event::Connected), None);
    }

    #[test]
    fn publish_violations_are_typed_and_remembered() {
        let event = |s: &str| Event::ServerError(ServerError::Other(s.to_owned()));
        assert_eq!(
            PermissionViolation::from_event(&event(r#"Permissions Violation for Publish to "a.\"b\"\\c""#)),
            Some(PermissionViolation::Publish { subject: r#"a."b"\c"#.to_owned() })
        );
        for garbage in [
            r#"Permissions Violation for Publish to "unterminated"#,
            r#"Permissions Violation for Publish to unquoted"#,
            r#"Permissions Violation for Publish to "x\"#,
            "",
        ] {
            assert_eq!(PermissionViolation::from_event(&event(garbage)), None, "{garbage:?}");
        }
        let events = ClientEvents::new();
        assert!(!events.recently_denied("orders.secret"));
        events.forward(event(r#"Permissions Violation for Publish to "orders.secret""#));
        assert!(events.recently_denied("orders.secret"));
        assert!(!events.recently_denied("orders.public"));
        for i in 0..MAX_DENIALS + 10 {
            events.forward(event(&format!(r#"Permissions Violation for Publish to "s.{i}""#)));
        }
        assert!(events.denied.lock().unwrap().len() <= MAX_DENIALS, "bounded");
        assert!(events.recently_denied(&format!("s.{}", MAX_DENIALS + 9)), "the newest is kept");
    }
}
