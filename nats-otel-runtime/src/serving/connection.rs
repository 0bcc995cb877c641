//! Whether the client's connection task still runs, asked when a serving loop's
//! subscription ends without a drain.
//!
//! async-nats runs each connection in a task of its own. When that task ends —
//! the client was drained, or the task died: async-nats 0.51 panics inside it on
//! a header value holding a lone CR (`docs/upstream/async-nats-header-parsing.md`)
//! — every subscription ends and every command fails, while
//! `Client::connection_state` goes on reporting `Connected` and no event says
//! otherwise. The one reliable sign is the task's command channel: a `flush` is a
//! command, so it fails at once when nothing receives commands any more.

use std::time::Duration;

use async_nats::Client;

use crate::error::{ServeError, ServeErrorKind};

/// How long the probe waits for the connection task to confirm a flush. A live
/// task answers at once when connected; while it reconnects, the flush waits.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The error for a serving loop (described by `context`: the handler and its
/// subject or consumer) whose subscription or pull stream ended while the
/// service was not stopping: [`ServeErrorKind::ConnectionClosed`] when the
/// client's connection task has ended, [`ServeErrorKind::SubscriptionClosed`]
/// when it still runs.
pub(crate) async fn subscription_ended(client: &Client, context: &str) -> ServeError {
    match tokio::time::timeout(PROBE_TIMEOUT, client.flush()).await {
        // Either the command could not be sent (no receiver), or the task was
        // dropped holding it (`FlushErrorKind::FlushError`: its observer is only
        // dropped with the task). Both mean the task has ended.
        Ok(Err(e)) => ServeError::with_source(ServeErrorKind::ConnectionClosed, e).context(context),
        Ok(Ok(())) => ServeError::new(ServeErrorKind::SubscriptionClosed).context(context),
        Err(_) => ServeError::with_source(
            ServeErrorKind::SubscriptionClosed,
            format!(
                "the client has not confirmed a flush within {PROBE_TIMEOUT:?}: it is reconnecting or stuck"
            ),
        )
        .context(context),
    }
}
