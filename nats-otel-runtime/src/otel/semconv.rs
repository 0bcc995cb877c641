//! Attribute names and values emitted on spans: OpenTelemetry messaging semantic
//! conventions v1.44, plus the NATS-specific `messaging.nats.*` names of the seed spec.
//!
//! The standard names come from `opentelemetry-semantic-conventions`, so they stay in
//! step with the ecosystem; only NATS extras and deprecated names are spelled here.

pub use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, MESSAGING_BATCH_MESSAGE_COUNT, MESSAGING_CLIENT_ID, MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_TEMPLATE, MESSAGING_MESSAGE_BODY_SIZE,
    MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME, MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM,
    SERVER_ADDRESS, SERVER_PORT,
};

/// `messaging.system` value for NATS (not yet in the well-known list of semconv v1.44).
pub const SYSTEM_NATS: &str = "nats";

/// The reply subject of a request (seed spec).
pub const MESSAGING_NATS_REPLY_TO: &str = "messaging.nats.reply_to";

/// How many messages of a batch publish were sent (and, on JetStream, stored) (seed spec).
pub const BATCH_SUCCESS_COUNT: &str = "batch.success_count";

/// How many messages of a batch publish failed (seed spec).
pub const BATCH_FAILURE_COUNT: &str = "batch.failure_count";

/// A message's position in its batch, on a `Batch item failed` event.
pub const MESSAGING_NATS_BATCH_INDEX: &str = "messaging.nats.batch.index";

/// Deprecated names emitted as well with `OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup`.
pub mod deprecated {
    /// Replaced by `messaging.operation.type` in semconv 1.25.
    pub const MESSAGING_OPERATION: &str = "messaging.operation";
    /// Replaced by `server.address` in semconv 1.21.
    pub const NET_PEER_NAME: &str = "net.peer.name";
    /// Replaced by `server.port` in semconv 1.21.
    pub const NET_PEER_PORT: &str = "net.peer.port";
}

/// Which attribute generations to emit, read once from `OTEL_SEMCONV_STABILITY_OPT_IN`.
///
/// OpenTelemetry asks instrumentations that used older conventions to keep them until
/// users opt in; nats-otel is new, so it emits the current names by default and adds
/// the older ones (as the seed spec names them) when `messaging/dup` is listed.
pub(crate) fn emit_deprecated_names() -> bool {
    static DUP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DUP.get_or_init(|| {
        std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN").map(|v| opt_in_has_messaging_dup(&v)).unwrap_or(false)
    })
}

fn opt_in_has_messaging_dup(value: &str) -> bool {
    value.split(',').any(|part| part.trim() == "messaging/dup")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_in_is_a_comma_separated_list() {
        assert!(opt_in_has_messaging_dup("messaging/dup"));
        assert!(opt_in_has_messaging_dup("http, messaging/dup"));
        assert!(!opt_in_has_messaging_dup("messaging"));
        assert!(!opt_in_has_messaging_dup(""));
    }
}
