//! Dead letters: what a JetStream message that will not be retried becomes.
//!
//! The rule: a message is termed only once its letter is confirmed stored. A
//! letter carries the original payload and headers, less the JetStream
//! publish-control headers (kept under `Nats-Otel-Original-*`, so the dead-letter
//! stream neither refuses nor deduplicates it), and an id of its own made of the
//! stream, sequence and consumer: a retry of the same letter is a duplicate,
//! another consumer's letter for the same message is not. A letter too large for
//! the server (or the stream) is sent again without its payload, then without the
//! copied headers, each time marked: never dropped in silence.

use crate::endpoint::DeadLetterRoute;
use std::borrow::Cow;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{HeaderMap, HeaderName};
use bytes::Bytes;

/// Headers a dead letter carries, besides the trace context and the original
/// message's own headers.
pub mod headers {
    /// The subject the message was published to.
    pub const SUBJECT: &str = "Nats-Otel-Subject";
    /// The stream it was stored in.
    pub const STREAM: &str = "Nats-Otel-Stream";
    /// Its sequence in that stream.
    pub const STREAM_SEQUENCE: &str = "Nats-Otel-Stream-Sequence";
    /// The consumer that gave up on it.
    pub const CONSUMER: &str = "Nats-Otel-Consumer";
    /// How many times it was delivered.
    pub const DELIVERED: &str = "Nats-Otel-Delivered";
    /// Why the last delivery failed (at most [`MAX_ERROR_LEN`](super::MAX_ERROR_LEN) bytes).
    pub const ERROR: &str = "Nats-Otel-Error";
    /// The `error.type` of that failure.
    pub const ERROR_TYPE: &str = "Nats-Otel-Error-Type";
    /// Set when the letter had to leave the payload out: the payload's size in bytes.
    pub const PAYLOAD_OMITTED: &str = "Nats-Otel-Payload-Omitted";
    /// Set when the letter had to leave the original headers out: how many there were.
    pub const HEADERS_OMITTED: &str = "Nats-Otel-Headers-Omitted";
    /// The original header block, base64, when it is not one a client can read
    /// (any publisher can store such bytes; async-nats drops the connection on them).
    pub const UNREADABLE_HEADERS: &str = "Nats-Otel-Unreadable-Headers";
    /// Prefix of the original message's publish-control headers (`Nats-Msg-Id`
    /// becomes `Nats-Otel-Original-Nats-Msg-Id`).
    pub const ORIGINAL_PREFIX: &str = "Nats-Otel-Original-";
}

/// At most this many bytes of the error's description go into a letter.
pub const MAX_ERROR_LEN: usize = 1024;

/// Headers nats-server acts on when a message is published to a stream
/// (`server/stream.go`, "Headers for published messages", and
/// `Nats-Required-Api-Level`). Copied into a letter they would make the
/// dead-letter stream refuse it (`Nats-Expected-Stream`), deduplicate it
/// (`Nats-Msg-Id`), expire, roll up, count, batch or schedule it.
const PUBLISH_CONTROL_HEADERS: [&str; 27] = [
    "Nats-Msg-Id",
    "Nats-Expected-Stream",
    "Nats-Expected-Last-Sequence",
    "Nats-Expected-Last-Subject-Sequence",
    "Nats-Expected-Last-Subject-Sequence-Subject",
    "Nats-Expected-Last-Msg-Id",
    "Nats-Stream-Source",
    "Nats-Last-Consumer",
    "Nats-Last-Stream",
    "Nats-Consumer-Stalled",
    "Nats-Rollup",
    "Nats-Msg-Size",
    "Nats-Response-Type",
    "Nats-TTL",
    "Nats-Marker-Reason",
    "Nats-Incr",
    "Nats-Counter-Sources",
    "Nats-Batch-Id",
    "Nats-Batch-Sequence",
    "Nats-Batch-Commit",
    "Nats-Schedule",
    "Nats-Schedule-Time-Zone",
    "Nats-Schedule-TTL",
    "Nats-Schedule-Rollup",
    "Nats-Schedule-Target",
    "Nats-Schedule-Source",
    "Nats-Required-Api-Level",
];

fn is_publish_control(name: &str) -> bool {
    PUBLISH_CONTROL_HEADERS.iter().any(|control| control.eq_ignore_ascii_case(name))
}

/// The message a letter is written for.
#[derive(Debug)]
pub(crate) struct Original<'a> {
    pub(crate) subject: &'a str,
    pub(crate) headers: Option<&'a HeaderMap>,
    /// A header block that could not be read, carried as it was.
    pub(crate) unreadable_headers: Option<&'a [u8]>,
    pub(crate) payload: &'a Bytes,
    pub(crate) stream: &'a str,
    pub(crate) consumer: &'a str,
    pub(crate) stream_sequence: u64,
    pub(crate) delivered: i64,
}

/// Why the message is given up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reason<'a> {
    pub(crate) message: &'a str,
    pub(crate) error_type: &'a str,
}

/// A letter ready to publish, in up to three sizes.
#[derive(Debug)]
pub(crate) struct Letter {
    /// Ours: where it came from, why, its id, the trace context.
    annotations: HeaderMap,
    /// The original headers, publish-control ones renamed.
    copied: HeaderMap,
    payload: Bytes,
}

/// How much of the original a letter carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LetterSize {
    /// Payload and headers.
    Whole,
    /// Headers, no payload ([`headers::PAYLOAD_OMITTED`] says how large it was).
    WithoutPayload,
    /// Neither ([`headers::HEADERS_OMITTED`] too).
    Bare,
}

impl Letter {
    /// Writes the letter for `original`; `cx` is the trace context it continues
    /// (`None` keeps the original's own trace headers).
    pub(crate) fn new(
        original: &Original<'_>,
        reason: Reason<'_>,
        cx: Option<&opentelemetry::Context>,
    ) -> Self {
        let mut copied = HeaderMap::new();
        if let Some(headers) = original.headers {
            for (name, values) in headers.iter() {
                let text: &str = name.as_ref();
                // Parsed, not asserted: a name from the wire must never panic here.
                let name = match is_publish_control(text) {
                    true => match format!("{}{text}", headers::ORIGINAL_PREFIX).parse::<HeaderName>() {
                        Ok(renamed) => renamed,
                        Err(_) => continue,
                    },
                    false => name.clone(),
                };
                for value in values {
                    copied.append(name.clone(), value.clone());
                }
            }
        }
        let mut annotations = HeaderMap::new();
        annotations.insert("Nats-Msg-Id", letter_id(original).as_str());
        annotations.insert(headers::SUBJECT, one_line(original.subject, usize::MAX).as_ref());
        annotations.insert(headers::STREAM, one_line(original.stream, usize::MAX).as_ref());
        annotations.insert(headers::CONSUMER, one_line(original.consumer, usize::MAX).as_ref());
        annotations.insert(headers::STREAM_SEQUENCE, original.stream_sequence.to_string().as_str());
        annotations.insert(headers::DELIVERED, original.delivered.to_string().as_str());
        annotations.insert(headers::ERROR, one_line(reason.message, MAX_ERROR_LEN).as_ref());
        annotations.insert(headers::ERROR_TYPE, one_line(reason.error_type, 256).as_ref());
        if let Some(block) = original.unreadable_headers {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(block);
            annotations.insert(headers::UNREADABLE_HEADERS, encoded.as_str());
        }
        if let Some(cx) = cx {
            crate::otel::propagation::inject_context(cx, &mut annotations);
            // The copied trace headers would contradict the injected ones.
            for name in ["traceparent", "tracestate"] {
                if annotations.get(name).is_some() {
                    copied = without(copied, name);
                }
            }
        }
        Self { annotations, copied, payload: original.payload.clone() }
    }

    /// The headers and payload of the letter at `size`.
    fn at(&self, size: LetterSize) -> (HeaderMap, Bytes) {
        let mut headers = match size {
            LetterSize::Bare => HeaderMap::new(),
            _ => self.copied.clone(),
        };
        for (name, values) in self.annotations.iter() {
            for (i, value) in values.iter().enumerate() {
                if i == 0 {
                    headers.insert(name.clone(), value.clone());
                } else {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        if size >= LetterSize::WithoutPayload {
            headers.insert(headers::PAYLOAD_OMITTED, self.payload.len().to_string().as_str());
        }
        if size == LetterSize::Bare {
            headers.insert(headers::HEADERS_OMITTED, self.copied.len().to_string().as_str());
        }
        let payload = if size == LetterSize::Whole { self.payload.clone() } else { Bytes::new() };
        (headers, payload)
    }

    /// The largest size that fits in `max_payload` bytes, if any.
    fn largest_within(&self, max_payload: usize) -> Option<LetterSize> {
        [LetterSize::Whole, LetterSize::WithoutPayload, LetterSize::Bare].into_iter().find(|&size| {
            let (headers, payload) = self.at(size);
            wire_size(&headers) + payload.len() <= max_payload
        })
    }
}

/// The letter's own `Nats-Msg-Id`: one per message and consumer.
fn letter_id(original: &Original<'_>) -> String {
    format!("nats-otel-dlq:{}:{}:{}", original.stream, original.consumer, original.stream_sequence)
}

fn without(headers: HeaderMap, name: &str) -> HeaderMap {
    headers
        .iter()
        .filter(|(n, _)| !AsRef::<str>::as_ref(*n).eq_ignore_ascii_case(name))
        .flat_map(|(n, values)| values.iter().map(move |v| (n.clone(), v.clone())))
        .collect()
}

/// `text` on one line (header values cannot hold line breaks), cut to at most
/// `max` bytes on a character boundary.
fn one_line(text: &str, max: usize) -> Cow<'_, str> {
    let cut = if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    } else {
        text
    };
    if cut.contains(|c: char| c.is_control()) {
        Cow::Owned(cut.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(cut)
    }
}

/// The bytes `headers` take on the wire (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`).
fn wire_size(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values.iter().map(|v| name.len() + 2 + v.as_str().len() + 2).sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

/// A letter stored by its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its sequence in the dead-letter stream (0 on the core route).
    pub(crate) sequence: u64,
    /// An earlier attempt of this same letter had already stored it.
    pub(crate) duplicate: bool,
    pub(crate) size: LetterSize,
}

/// Why a letter was not stored.
#[derive(Debug)]
pub(crate) struct Failed {
    /// `error.type`: `dead_letter_no_stream`, `dead_letter_refused`, …
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// Where a consumer's letters go.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetters {
    pub(crate) subject: Cow<'static, str>,
    pub(crate) route: DeadLetterRoute,
    pub(crate) jetstream: async_nats::jetstream::Context,
}

impl DeadLetters {
    /// Publishes `letter` and waits until it is confirmed stored, sending it
    /// smaller when the server or the stream finds it too large.
    pub(crate) async fn send(&self, letter: &Letter) -> Result<Stored, Failed> {
        let client = self.jetstream.client();
        let max_payload = client.server_info().max_payload;
        let Some(mut size) = letter.largest_within(max_payload) else {
            return Err(Failed {
                error_type: "dead_letter_too_large",
                message: format!(
                    "even without payload and headers the letter exceeds max_payload {max_payload}"
                ),
            });
        };
        loop {
            let (headers, payload) = letter.at(size);
            let sent = match self.route {
                DeadLetterRoute::Core => self.send_core(headers, payload).await.map(|()| Stored {
                    sequence: 0,
                    duplicate: false,
                    size,
                }),
                DeadLetterRoute::Stream => self.send_stream(headers, payload, size).await,
            };
            match sent {
                Err(SendError::TooLarge(message)) => match size {
                    LetterSize::Whole => size = LetterSize::WithoutPayload,
                    LetterSize::WithoutPayload => size = LetterSize::Bare,
                    LetterSize::Bare => return Err(Failed { error_type: "dead_letter_too_large", message }),
                },
                Err(SendError::Failed(failed)) => return Err(failed),
                Ok(stored) => return Ok(stored),
            }
        }
    }

    async fn send_core(&self, headers: HeaderMap, payload: Bytes) -> Result<(), SendError> {
        let client = self.jetstream.client();
        let failed = |e: &dyn std::fmt::Display| {
            SendError::Failed(Failed { error_type: "dead_letter_publish", message: e.to_string() })
        };
        client
            .publish_with_headers(self.subject.to_string(), headers, payload)
            .await
            .map_err(|e| failed(&e))?;
        client.flush().await.map_err(|e| failed(&e))
    }

    async fn send_stream(
        &self,
        headers: HeaderMap,
        payload: Bytes,
        size: LetterSize,
    ) -> Result<Stored, SendError> {
        let acked =
            match self.jetstream.publish_with_headers(self.subject.to_string(), headers, payload).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
        match acked {
            Ok(ack) => Ok(Stored { sequence: ack.sequence, duplicate: ack.duplicate, size }),
            Err(e) => Err(classify(&e)),
        }
    }
}

enum SendError {
    TooLarge(String),
    Failed(Failed),
}

fn classify(e: &async_nats::jetstream::context::PublishError) -> SendError {
    use async_nats::jetstream::ErrorCode;
    let code = std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .map(async_nats::jetstream::Error::error_code);
    let message = e.to_string();
    let error_type = match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => return SendError::TooLarge(message),
        _ if code == Some(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM) => return SendError::TooLarge(message),
        PublishErrorKind::StreamNotFound => "dead_letter_no_stream",
        PublishErrorKind::TimedOut => "dead_letter_timeout",
        _ => "dead_letter_refused",
    };
    SendError::Failed(Failed { error_type, message })
}

/// A message as its stream stores it, read back by sequence.
#[derive(Debug)]
pub(crate) struct StoredMessage {
    pub(crate) subject: String,
    pub(crate) headers: Option<HeaderMap>,
    /// The header block, when no client could read it.
    pub(crate) unreadable_headers: Option<Vec<u8>>,
    pub(crate) payload: Bytes,
}

/// Reads message `sequence` of `stream` with the JetStream API's `MSG.GET`,
/// parsing its headers here rather than with async-nats' parser, which refuses
/// (or panics on) header blocks that any publisher can store.
pub(crate) async fn fetch(
    client: &async_nats::Client,
    stream: &str,
    sequence: u64,
) -> Result<StoredMessage, String> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Response {
        message: Option<RawStored>,
        error: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct RawStored {
        subject: String,
        hdrs: Option<String>,
        data: Option<String>,
    }
    let request = serde_json::json!({ "seq": sequence }).to_string();
    let subject = format!("$JS.API.STREAM.MSG.GET.{stream}");
    let reply = client.request(subject, request.into()).await.map_err(|e| e.to_string())?;
    let response: Response = serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())?;
    let Some(message) = response.message else {
        return Err(response
            .error
            .map_or_else(|| "no message in the response".to_owned(), |e| e.to_string()));
    };
    let base64 = base64::engine::general_purpose::STANDARD;
    let payload = match message.data {
        Some(data) => base64.decode(data).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let (headers, unreadable_headers) = match message.hdrs {
        Some(hdrs) => {
            let block = base64.decode(hdrs).map_err(|e| e.to_string())?;
            match parse_header_block(&block) {
                Some(headers) => (Some(headers), None),
                None => (None, Some(block)),
            }
        }
        None => (None, None),
    };
    Ok(StoredMessage { subject: message.subject, headers, unreadable_headers, payload: payload.into() })
}

/// A well-formed `NATS/1.0` header block as a map; `None` for anything a
/// strict reader would refuse, so it is carried as bytes instead.
fn parse_header_block(block: &[u8]) -> Option<HeaderMap> {
    let text = std::str::from_utf8(block).ok()?;
    let mut lines = text.strip_suffix("\r\n\r\n")?.split("\r\n");
    if lines.next()? != "NATS/1.0" {
        return None;
    }
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if value.contains(['\r', '\n']) {
            return None;
        }
        let name = name.parse::<HeaderName>().ok()?;
        headers.append(name, value.trim());
    }
    Some(headers)
}

/// How long a message waits before it is delivered again when its letter could
/// not be stored: the consumer's backoff entry, else doubling from 1 s to 1 min,
/// so a dead-letter stream that refuses never turns into a zero-delay loop.
pub(crate) fn retry_delay(backoff: Option<Duration>, delivered: i64) -> Duration {
    backoff.filter(|d| !d.is_zero()).unwrap_or_else(|| {
        let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 6)).unwrap_or(6);
        Duration::from_secs(1 << doublings).min(Duration::from_secs(60))
    })
}

/// Records on the process span where its message's dead letter was stored.
pub(crate) fn record_stored(cx: &opentelemetry::Context, subject: &str, stored: Stored) {
    use opentelemetry::trace::TraceContextExt as _;
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    let mut attributes = vec![
        opentelemetry::KeyValue::new("messaging.nats.dead_letter.subject", subject.to_owned()),
        opentelemetry::KeyValue::new(
            "messaging.nats.dead_letter.sequence",
            i64::try_from(stored.sequence).unwrap_or(i64::MAX),
        ),
    ];
    if stored.size != LetterSize::Whole {
        attributes.push(opentelemetry::KeyValue::new(
            "messaging.nats.dead_letter.size",
            format!("{:?}", stored.size),
        ));
    }
    if stored.duplicate {
        attributes.push(opentelemetry::KeyValue::new("messaging.nats.dead_letter.duplicate", true));
    }
    span.add_event("dead letter stored", attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original<'a>(headers: Option<&'a HeaderMap>, payload: &'a Bytes) -> Original<'a> {
        Original {
            subject: "orders.eu",
            headers,
            unreadable_headers: None,
            payload,
            stream: "ORDERS",
            consumer: "billing",
            stream_sequence: 42,
            delivered: 3,
        }
    }

    const REASON: Reason<'static> = Reason { message: "boom", error_type: "e" };

    #[test]
    fn publish_control_headers_are_kept_under_other_names() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", "abc");
        headers.insert("Nats-Expected-Stream", "ORDERS");
        headers.insert("nats-ttl", "1s");
        headers.insert("X-Tenant", "acme");
        let payload = Bytes::from_static(b"{}");
        let letter = Letter::new(&original(Some(&headers), &payload), REASON, None);
        let (sent, body) = letter.at(LetterSize::Whole);
        assert_eq!(sent.get("Nats-Msg-Id").unwrap().as_str(), "nats-otel-dlq:ORDERS:billing:42");
        assert!(sent.get("Nats-Expected-Stream").is_none());
        assert_eq!(sent.get("Nats-Otel-Original-Nats-Msg-Id").unwrap().as_str(), "abc");
        assert_eq!(sent.get("Nats-Otel-Original-Nats-Expected-Stream").unwrap().as_str(), "ORDERS");
        assert_eq!(sent.get("Nats-Otel-Original-nats-ttl").unwrap().as_str(), "1s");
        assert_eq!(sent.get("X-Tenant").unwrap().as_str(), "acme");
        assert_eq!(sent.get(headers::STREAM_SEQUENCE).unwrap().as_str(), "42");
        assert_eq!(&body[..], b"{}");
    }

    #[test]
    fn letters_shrink_to_fit_and_say_what_they_left_out() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Big", "h".repeat(600).as_str());
        let payload = Bytes::from(vec![b'x'; 2000]);
        let letter = Letter::new(&original(Some(&headers), &payload), REASON, None);
        assert_eq!(letter.largest_within(1 << 20), Some(LetterSize::Whole));
        assert_eq!(letter.largest_within(1500), Some(LetterSize::WithoutPayload));
        assert_eq!(letter.largest_within(600), Some(LetterSize::Bare));
        assert_eq!(letter.largest_within(100), None);
        let (sent, body) = letter.at(LetterSize::WithoutPayload);
        assert!(body.is_empty());
        assert_eq!(sent.get(headers::PAYLOAD_OMITTED).unwrap().as_str(), "2000");
        let (sent, _) = letter.at(LetterSize::Bare);
        assert!(sent.get("X-Big").is_none());
        assert_eq!(sent.get(headers::HEADERS_OMITTED).unwrap().as_str(), "1");
        for size in [LetterSize::Whole, LetterSize::WithoutPayload, LetterSize::Bare] {
            let (sent, body) = letter.at(size);
            assert_eq!(
                wire_size(&sent) + body.len() <= 1500,
                size != LetterSize::Whole,
                "{size:?} measured as sent"
            );
        }
    }

    #[test]
    fn only_well_formed_header_blocks_are_read() {
        let good = parse_header_block(b"NATS/1.0\r\nX-A: 1\r\nX-A: 2\r\nB:3\r\n\r\n").unwrap();
        assert_eq!(good.get_all("X-A").map(|v| v.as_str().to_owned()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(good.get("B").unwrap().as_str(), "3");
        for bad in [
            &b"NATS/1.0\r\nno colon\r\n\r\n"[..],
            b"NATS/1.0\r\nX: a\rb\r\n\r\n",
            b"NATS/1.0\r\nX: \xff\r\n\r\n",
            b"NATS/1.0\r\nX Y: 1\r\n\r\n",
            b"NATS/2.0\r\nX: 1\r\n\r\n",
            b"NATS/1.0\r\nX: 1\r\n",
            b"",
        ] {
            assert!(parse_header_block(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn an_unreadable_header_block_travels_as_base64() {
        let payload = Bytes::from_static(b"x");
        let original =
            Original { unreadable_headers: Some(b"NATS/1.0\r\nbad\r\n\r\n"), ..original(None, &payload) };
        let (sent, _) = Letter::new(&original, REASON, None).at(LetterSize::Whole);
        assert_eq!(sent.get(headers::UNREADABLE_HEADERS).unwrap().as_str(), "TkFUUy8xLjANCmJhZA0KDQo=");
    }

    #[test]
    fn error_text_is_one_capped_line() {
        let long = format!("line one\r\nline two {}", "é".repeat(2000));
        let capped = one_line(&long, MAX_ERROR_LEN);
        assert!(capped.len() <= MAX_ERROR_LEN);
        assert!(!capped.contains(['\r', '\n']));
        assert!(capped.starts_with("line one  line two"));
    }

    #[test]
    fn a_refused_letter_is_retried_after_a_delay_never_at_once() {
        assert_eq!(retry_delay(None, 1), Duration::from_secs(1));
        assert_eq!(retry_delay(None, 3), Duration::from_secs(4));
        assert_eq!(retry_delay(None, 1000), Duration::from_secs(60));
        assert_eq!(retry_delay(Some(Duration::ZERO), 1), Duration::from_secs(1));
        assert_eq!(retry_delay(Some(Duration::from_secs(10)), 1), Duration::from_secs(10));
    }
}
