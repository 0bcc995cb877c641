//! What a handler can take from a JetStream delivery: its metadata and, to settle
//! it by hand, an [`Acker`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;

use super::extract::{Extractor, FromMessage, Rejection};
use super::incoming::Incoming;
use super::settlement::Settlement;

/// The JetStream metadata of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamInfo {
    /// The stream.
    pub stream: Arc<str>,
    /// The consumer.
    pub consumer: Arc<str>,
    /// The message's sequence in the stream.
    pub stream_sequence: u64,
    /// The delivery's sequence in the consumer.
    pub consumer_sequence: u64,
    /// How many times the message has been delivered, this one included.
    pub delivered: i64,
    /// How many messages the consumer has yet to deliver.
    pub pending: u64,
    /// When the message was stored.
    pub published: SystemTime,
}

impl JetStreamInfo {
    /// Reads the metadata of a JetStream delivery from its reply subject
    /// (`$JS.ACK.…`, either form of ADR-15); `None` when it has none. Equal to
    /// what async-nats' [`info`](jetstream::Message::info) says, for less.
    ///
    /// ```
    /// use async_nats::jetstream;
    /// use nats_otel_runtime::JetStreamInfo;
    ///
    /// fn is_redelivery(message: &jetstream::Message) -> bool {
    ///     JetStreamInfo::read(message).is_some_and(|info| info.delivered > 1)
    /// }
    /// ```
    pub fn read(message: &jetstream::Message) -> Option<Self> {
        Self::read_sharing(message, None)
    }

    /// Reads the delivery metadata; `names` are the consumer's own stream and
    /// consumer names, shared instead of allocated per message.
    pub(crate) fn from_message(message: &jetstream::Message, names: &(Arc<str>, Arc<str>)) -> Option<Self> {
        Self::read_sharing(message, Some(names))
    }

    fn read_sharing(message: &jetstream::Message, names: Option<&(Arc<str>, Arc<str>)>) -> Option<Self> {
        let fields = AckSubject::v1(message.reply.as_deref()?)
            .or_else(|| message.info().ok().map(AckSubject::from_async_nats))?;
        Some(Self::from_fields(fields, names))
    }

    /// The metadata of `fields`, its names taken from `names` where they match.
    fn from_fields(fields: AckSubject<'_>, names: Option<&(Arc<str>, Arc<str>)>) -> Self {
        let shared = |parsed: &str, known: Option<&Arc<str>>| match known {
            Some(known) if parsed == &**known => known.clone(),
            _ => Arc::from(parsed),
        };
        Self {
            stream: shared(fields.stream, names.map(|names| &names.0)),
            consumer: shared(fields.consumer, names.map(|names| &names.1)),
            stream_sequence: fields.stream_sequence,
            consumer_sequence: fields.consumer_sequence,
            delivered: fields.delivered,
            pending: fields.pending,
            published: fields.published,
        }
    }
}

/// async-nats' reading of the same metadata, its names copied.
impl From<jetstream::message::Info<'_>> for JetStreamInfo {
    fn from(info: jetstream::message::Info<'_>) -> Self {
        Self::from_fields(AckSubject::from_async_nats(info), None)
    }
}

/// The fields of a `$JS.ACK` reply subject.
#[derive(Debug, PartialEq)]
struct AckSubject<'a> {
    stream: &'a str,
    consumer: &'a str,
    delivered: i64,
    stream_sequence: u64,
    consumer_sequence: u64,
    published: SystemTime,
    pending: u64,
}

/// The form servers write unless a domain or account hash is needed is read
/// here, in one pass over its bytes; any other form, and anything unusual in
/// this one (a sign, an overflow), by async-nats, whose results these are
/// (callgrind, scenario A: 1,700 instructions a message through async-nats
/// alone, most of it on the number parsing and a date rarely read).
impl<'a> AckSubject<'a> {
    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<nanos>.<pending>`.
    fn v1(reply: &'a str) -> Option<Self> {
        let (stream, rest) = split_token(reply.strip_prefix("$JS.ACK.")?)?;
        let (consumer, numbers) = split_token(rest)?;
        let [delivered, stream_sequence, consumer_sequence, published, pending] = decimals(numbers)?;
        Some(Self {
            stream,
            consumer,
            delivered: i64::try_from(delivered).ok()?,
            stream_sequence,
            consumer_sequence,
            published: SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(published))?,
            pending,
        })
    }

    fn from_async_nats(info: jetstream::message::Info<'a>) -> Self {
        Self {
            stream: info.stream,
            consumer: info.consumer,
            delivered: info.delivered,
            stream_sequence: info.stream_sequence,
            consumer_sequence: info.consumer_sequence,
            published: info.published.into(),
            pending: info.pending,
        }
    }
}

/// The text before the first dot, and the text after it.
fn split_token(text: &str) -> Option<(&str, &str)> {
    let dot = text.bytes().position(|byte| byte == b'.')?;
    Some((text.get(..dot)?, text.get(dot + 1..)?))
}

/// Exactly `N` decimal numbers separated by dots, each of 1 to 19 digits, so
/// none overflows a `u64` (the 20-digit ones that fit are left to async-nats).
fn decimals<const N: usize>(text: &str) -> Option<[u64; N]> {
    let mut values = [0; N];
    let mut bytes = text.bytes();
    for (index, value) in values.iter_mut().enumerate() {
        let last = index + 1 == N;
        let mut digits = 0;
        loop {
            match bytes.next() {
                Some(byte @ b'0'..=b'9') if digits < 19 => {
                    *value = *value * 10 + u64::from(byte - b'0');
                    digits += 1;
                }
                Some(b'.') if !last && digits > 0 => break,
                None if last && digits > 0 => break,
                _ => return None,
            }
        }
    }
    Some(values)
}

impl Extractor for JetStreamInfo {}

impl<S> FromMessage<S> for JetStreamInfo {
    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        incoming.jetstream().cloned().ok_or_else(|| {
            Rejection::new("not_jetstream", "`JetStreamInfo` needs a message from a JetStream consumer")
                .with_code(500)
        })
    }
}

/// Manual settlement: a handler that takes an `Acker` settles its message itself,
/// and the service does not (unless the handler fails or panics before settling,
/// when the settlement table applies).
///
/// ```
/// use nats_otel_runtime::prelude::*;
/// use nats_otel_runtime::Acker;
///
/// #[jetstream_consumer(stream = "ORDERS", durable = "manual")]
/// async fn handle(body: Bytes, acker: Acker) -> Result<(), async_nats::Error> {
///     if body.is_empty() {
///         acker.term().await?;
///     } else {
///         acker.ack().await?;
///     }
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct Acker(Arc<dyn SettleByHand>);

impl Acker {
    /// Acknowledges: processed.
    pub async fn ack(&self) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Ack).await
    }

    /// Asks for redelivery, after `delay` if given.
    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Nak(delay)).await
    }

    /// Never redeliver.
    pub async fn term(&self) -> Result<(), async_nats::Error> {
        self.0.settle(Settlement::Term).await
    }

    /// Still working: resets the server's ack timer.
    pub async fn in_progress(&self) {
        self.0.in_progress().await;
    }
}

impl Extractor for Acker {}

impl<S> FromMessage<S> for Acker {
    const SETTLES_ITSELF: bool = true;

    fn from_message(incoming: &Incoming, _: &S) -> Result<Self, Rejection> {
        incoming.settler.clone().map(Acker).ok_or_else(|| {
            Rejection::new("not_jetstream", "`Acker` needs a message from a JetStream consumer")
                .with_code(500)
        })
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What settles a delivery for an [`Acker`]: the consumer's settler, attached
/// to the message it delivered. Boxed futures: only handlers that settle by hand
/// pay for them.
pub(crate) trait SettleByHand: Send + Sync + fmt::Debug {
    /// Sends `settlement` and records it.
    fn settle(&self, settlement: Settlement) -> BoxFuture<'_, Result<(), async_nats::Error>>;
    /// Resets the server's ack timer.
    fn in_progress(&self) -> BoxFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JetStream delivery with `reply`, from a client that never connects:
    /// enough for async-nats to read its metadata.
    async fn delivery(reply: &str) -> jetstream::Message {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("127.0.0.1:1")
            .await
            .unwrap();
        let message = async_nats::Message {
            subject: "orders.created".into(),
            reply: Some(reply.into()),
            payload: bytes::Bytes::new(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        };
        jetstream::Message { message, context: jetstream::new(client) }
    }

    const V1: &str = "$JS.ACK.ORDERS.billing.2.41.17.1764950400123456789.5";

    /// Every one-byte edit of `subject`: each byte replaced, removed, or
    /// preceded by one of the bytes that matter to the grammar.
    fn edits(subject: &str) -> Vec<String> {
        let bytes = subject.as_bytes();
        let mut edits = Vec::new();
        for at in 0..=bytes.len() {
            for byte in [b'.', b'+', b'-', b'0', b'9', b'a', b' ', b'_'] {
                let mut inserted = bytes.to_vec();
                inserted.insert(at, byte);
                edits.push(inserted);
                if at < bytes.len() {
                    let mut replaced = bytes.to_vec();
                    replaced[at] = byte;
                    edits.push(replaced);
                }
            }
            if at < bytes.len() {
                let mut removed = bytes.to_vec();
                removed.remove(at);
                edits.push(removed);
            }
        }
        edits.into_iter().filter_map(|edit| String::from_utf8(edit).ok()).collect()
    }

    #[tokio::test]
    async fn reads_what_async_nats_reads() {
        let max = u64::MAX.to_string();
        let past = (u128::from(u64::MAX) + 1).to_string();
        let delivered_max = i64::MAX.to_string();
        let delivered_past = (i64::MAX as u64 + 1).to_string();
        let mut subjects: Vec<String> = vec![
            V1.into(),
            // ADR-15's v2: domain (`_` for none), account hash, an optional
            // token, and any more tokens.
            "$JS.ACK._.ACCHASH.ORDERS.billing.2.41.17.1764950400123456789.5".into(),
            "$JS.ACK.hub.ACCHASH.ORDERS.billing.2.41.17.1764950400123456789.5.r4nd".into(),
            "$JS.ACK.hub.ACCHASH.ORDERS.billing.2.41.17.1764950400123456789.5.r4nd.more.tokens".into(),
            "$JS.ACK.ORDERS.billing.02.041.017.0.05".into(),
            "$JS.ACK.ORDERS.billing.+2.41.17.1.5".into(),
            "$JS.ACK.ORDERS.billing.-2.41.17.-1.5".into(),
            "$JS.ACK..billing.2.41.17.1.5".into(),
            "$JS.ACK.ORDERS..2.41.17.1.5".into(),
            "$JS.ACK.ORDERS.billing.2.41.17.1.5.".into(),
            "$JS.ACK.ORDERS.billing.2.41.17.1.".into(),
            "$JS.ACK.ORDERS.billing.2.41.17.1".into(),
            "$JS.ACK.".into(),
            "$JS.ACK".into(),
            "_INBOX.abc".into(),
            String::new(),
            format!("$JS.ACK.ORDERS.billing.{delivered_max}.{max}.{max}.{max}.{max}"),
            format!("$JS.ACK.ORDERS.billing.{delivered_past}.1.1.1.1"),
        ];
        for slot in 0..5 {
            for value in [&max, &past] {
                let mut numbers = ["2", "41", "17", "1764950400123456789", "5"];
                numbers[slot] = value;
                subjects.push(format!("$JS.ACK.ORDERS.billing.{}", numbers.join(".")));
            }
        }
        subjects.extend(edits(V1));
        let mut read_here = 0;
        for subject in &subjects {
            let message = delivery(subject).await;
            let by_async_nats = message.info().ok().map(JetStreamInfo::from);
            assert_eq!(JetStreamInfo::read(&message), by_async_nats, "{subject:?}");
            read_here += usize::from(AckSubject::v1(subject).is_some());
        }
        // The fast path is taken, and not only for the canonical subject.
        assert!(read_here > 50, "{read_here} of {} read in one pass", subjects.len());
    }

    #[test]
    fn reads_the_v1_form_in_one_pass_and_leaves_the_rest_to_async_nats() {
        let fields = AckSubject::v1(V1).unwrap();
        assert_eq!((fields.stream, fields.consumer, fields.delivered), ("ORDERS", "billing", 2));
        assert_eq!((fields.stream_sequence, fields.consumer_sequence, fields.pending), (41, 17, 5));
        let nanos = fields.published.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        assert_eq!(nanos, 1_764_950_400_123_456_789);
        for other in [
            "$JS.ACK._.ACCHASH.ORDERS.billing.2.41.17.1764950400123456789.5",
            "$JS.ACK.ORDERS.billing.+2.41.17.1.5",
            "$JS.ACK.ORDERS.billing.2.41.17.1.5.6",
            "$JS.ACK.ORDERS.billing.2.41.17.1",
            "$JS.ACK.ORDERS.billing.2..17.1.5",
        ] {
            assert_eq!(AckSubject::v1(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn shares_the_consumer_names_it_is_given() {
        let names: (Arc<str>, Arc<str>) = ("ORDERS".into(), "billing".into());
        let info = JetStreamInfo::from_message(&delivery(V1).await, &names).unwrap();
        assert!(Arc::ptr_eq(&info.stream, &names.0) && Arc::ptr_eq(&info.consumer, &names.1));
        assert_eq!(
            (info.delivered, info.stream_sequence, info.consumer_sequence, info.pending),
            (2, 41, 17, 5)
        );
        let nanos = info.published.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        assert_eq!(nanos, 1_764_950_400_123_456_789);
        let other = JetStreamInfo::from_message(&delivery("$JS.ACK.A.b.1.1.1.1.1").await, &names).unwrap();
        assert_eq!((&*other.stream, &*other.consumer), ("A", "b"));
    }
}
