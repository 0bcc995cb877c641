//! Key-value entries, as a `#[kv_watch]` handler receives them: a bucket is a
//! stream (`KV_{bucket}`) whose subjects are `$KV.{bucket}.{key}`, so a watch
//! is an ordered consumer on it, and an entry is one of its messages read as
//! the key, the operation and the revision.

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;

use super::extract::{Extractor, FromMessage, Rejection};
use super::incoming::Incoming;

/// The header a delete or purge marker carries (ADR-8).
const KV_OPERATION: &str = "KV-Operation";

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOperation {
    /// A value was put.
    Put,
    /// The key was deleted (its history is kept).
    Delete,
    /// The key was purged (its history is gone).
    Purge,
}

impl KvOperation {
    /// As recorded on the span (`messaging.nats.kv.operation`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Delete => "delete",
            Self::Purge => "purge",
        }
    }
}

/// One change to a watched key: its key, what happened, its revision, and for
/// a put its value decoded by `T` (`Json<Config>`, `String`, `Bytes`, …).
///
/// ```
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::{KvEntry, KvOperation};
///
/// #[derive(Deserialize)]
/// struct Tenant { plan: String }
///
/// #[kv_watch(bucket = "config", key = "tenants.>")]
/// async fn on_tenant(entry: KvEntry<Json<Tenant>>) {
///     match (entry.operation, entry.value) {
///         (KvOperation::Put, Some(Json(tenant))) => tracing::info!(key = %entry.key, plan = %tenant.plan, "tenant changed"),
///         _ => tracing::info!(key = %entry.key, "tenant removed"),
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct KvEntry<T> {
    /// The bucket.
    pub bucket: String,
    /// The key, without the bucket's subject prefix.
    pub key: String,
    /// Put, delete or purge.
    pub operation: KvOperation,
    /// The entry's revision: its sequence in the bucket's stream.
    pub revision: u64,
    /// The value, decoded: `Some` for a put, `None` for a delete or purge.
    pub value: Option<T>,
}

impl<T> Extractor for KvEntry<T> {}

impl<S, T: FromMessage<S>> FromMessage<S> for KvEntry<T> {
    fn from_message(incoming: &Incoming, state: &S) -> Result<Self, Rejection> {
        let info = incoming.jetstream().ok_or_else(|| {
            Rejection::new("not_kv", "`KvEntry` needs a message from a `#[kv_watch]` watch").with_code(500)
        })?;
        let (bucket, key) =
            incoming.subject().strip_prefix("$KV.").and_then(|rest| rest.split_once('.')).ok_or_else(
                || {
                    Rejection::new("not_kv", format!("`{}` is not a key-value subject", incoming.subject()))
                        .with_code(500)
                },
            )?;
        let operation = match incoming.headers().and_then(|h| h.get(KV_OPERATION)).map(|v| v.as_str()) {
            None => KvOperation::Put,
            Some("DEL") => KvOperation::Delete,
            Some("PURGE") => KvOperation::Purge,
            Some(other) => {
                return Err(Rejection::new("kv_operation", format!("unknown `KV-Operation: {other}`")));
            }
        };
        let span = incoming.context().span();
        if span.is_recording() {
            span.set_attributes([
                KeyValue::new("messaging.nats.kv.bucket", bucket.to_owned()),
                KeyValue::new("messaging.nats.kv.key", key.to_owned()),
                KeyValue::new("messaging.nats.kv.operation", operation.as_str()),
                KeyValue::new(
                    "messaging.nats.kv.revision",
                    i64::try_from(info.stream_sequence).unwrap_or(i64::MAX),
                ),
            ]);
        }
        let value = match operation {
            KvOperation::Put => Some(T::from_message(incoming, state)?),
            KvOperation::Delete | KvOperation::Purge => None,
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            operation,
            revision: info.stream_sequence,
            value,
        })
    }
}
