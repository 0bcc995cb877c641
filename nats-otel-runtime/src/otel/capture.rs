//! Opt-in capture of header values and payload bytes on `process` spans.
//!
//! By default nats-otel records no header values and no payload bytes: they may
//! carry credentials, personal data or secrets. An endpoint can opt in to an
//! allow-list of headers and to the first bytes of the body, with
//! [`Subscription::capture_headers`](crate::Subscription::capture_headers) /
//! [`capture_body`](crate::Subscription::capture_body) (and the same on
//! [`JetStreamConsumer`](crate::JetStreamConsumer)), or the macro options
//! `capture_headers = ["x-tenant"]` and `capture_body = 256`.
//!
//! | attribute | type | when |
//! |---|---|---|
//! | `messaging.nats.message.header.<name>` | string array | an allow-listed header is present; `<name>` lower-cased, matched case-insensitively; every value in order, each cut to [`MAX_HEADER_VALUE_LEN`] bytes |
//! | `messaging.nats.message.body` | string | `capture_body` is set: the first bytes of the payload, at most the cap |
//! | `messaging.nats.message.body.encoding` | string | `utf-8` (the text, cut on a character boundary) or `base64` (a payload that is not UTF-8: its first bytes, base64-encoded) |
//! | `messaging.nats.message.body.truncated` | bool | whether the payload was longer than what was recorded (its full size is `messaging.message.body.size`) |
//!
//! Semantic conventions define no message-header or body attributes for
//! messaging; like HTTP's `http.request.header.<key>`, header values are string
//! arrays under a lower-cased name, and both live under the `messaging.nats.*`
//! namespace the other NATS-specific attributes use.
//!
//! With the options off (the default), nothing is computed and nothing is
//! allocated per message.

use crate::endpoint::capture::CaptureConfig;

use async_nats::HeaderMap;
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};

/// The largest `capture_body` cap, in bytes: a span is not a payload store
/// (the rule book's, as the macros check it).
pub use nats_otel_rules::MAX_BODY_CAPTURE;

/// Captured header values are cut to this many bytes (on a character boundary).
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Prefix of the header attributes; the lower-cased header name follows.
pub const HEADER_ATTRIBUTE_PREFIX: &str = "messaging.nats.message.header.";
/// The captured body.
pub const BODY_ATTRIBUTE: &str = "messaging.nats.message.body";
/// `utf-8` or `base64`.
pub const BODY_ENCODING_ATTRIBUTE: &str = "messaging.nats.message.body.encoding";
/// Whether the payload was longer than the captured part.
pub const BODY_TRUNCATED_ATTRIBUTE: &str = "messaging.nats.message.body.truncated";

/// The capture of one endpoint, prepared once: lower-cased names and their
/// attribute keys.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    headers: Box<[(Box<str>, Key)]>,
    body: Option<usize>,
}

impl Capture {
    pub(crate) fn new(config: &CaptureConfig) -> Self {
        Self::from_parts(config.headers.iter().map(|h| &**h), config.body)
    }

    fn from_parts<'a>(names: impl Iterator<Item = &'a str>, body: Option<usize>) -> Self {
        let headers = names
            .map(|name| {
                let lower = name.to_ascii_lowercase();
                let key = Key::from(format!("{HEADER_ATTRIBUTE_PREFIX}{lower}"));
                (lower.into_boxed_str(), key)
            })
            .collect();
        Self { headers, body: body.map(|cap| cap.min(MAX_BODY_CAPTURE)) }
    }

    /// Whether nothing is captured (the default): the per-message cost is this check.
    pub(crate) fn is_off(&self) -> bool {
        self.headers.is_empty() && self.body.is_none()
    }

    /// How many attributes a message can add at most (for sizing).
    pub(crate) fn len(&self) -> usize {
        self.headers.len() + if self.body.is_some() { 3 } else { 0 }
    }

    /// Adds the captured attributes of `message` to a `process` span's.
    pub(crate) fn extend(&self, attributes: &mut Vec<KeyValue>, message: &async_nats::Message) {
        if self.is_off() {
            return;
        }
        attributes.extend(self.attributes(message.headers.as_ref(), &message.payload));
    }

    /// The attributes for one message.
    pub(crate) fn attributes(&self, headers: Option<&HeaderMap>, payload: &[u8]) -> Vec<KeyValue> {
        let mut out = Vec::new();
        if let Some(headers) = headers {
            for (lower, key) in &self.headers {
                let values: Vec<StringValue> = headers
                    .iter()
                    .filter(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(lower))
                    .flat_map(|(_, values)| values.iter())
                    .map(|value| StringValue::from(cut_str(value.as_str(), MAX_HEADER_VALUE_LEN).to_owned()))
                    .collect();
                if !values.is_empty() {
                    out.push(KeyValue::new(key.clone(), Value::Array(Array::String(values))));
                }
            }
        }
        if let Some(cap) = self.body {
            body_attributes(payload, cap, &mut out);
        }
        out
    }
}

/// The first `cap` bytes of `payload`: as text cut on a character boundary when
/// they are UTF-8, else base64.
fn body_attributes(payload: &[u8], cap: usize, out: &mut Vec<KeyValue>) {
    let prefix = payload.get(..cap).unwrap_or(payload);
    let (recorded, encoding, recorded_len) = match std::str::from_utf8(prefix) {
        Ok(text) => (text.to_owned(), "utf-8", prefix.len()),
        // The cap fell inside a character of a UTF-8 payload: keep the whole ones.
        Err(e) if e.error_len().is_none() && prefix.len() < payload.len() => {
            let valid = prefix.get(..e.valid_up_to()).unwrap_or_default();
            (String::from_utf8_lossy(valid).into_owned(), "utf-8", valid.len())
        }
        Err(_) => (base64(prefix), "base64", prefix.len()),
    };
    out.push(KeyValue::new(BODY_ATTRIBUTE, recorded));
    out.push(KeyValue::new(BODY_ENCODING_ATTRIBUTE, encoding));
    out.push(KeyValue::new(BODY_TRUNCATED_ATTRIBUTE, recorded_len < payload.len()));
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol = |index: u32| char::from(ALPHABET[(index & 63) as usize]);
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| chunk.get(i).copied().map_or(0, u32::from);
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(symbol(n >> 18));
        out.push(symbol(n >> 12));
        out.push(if chunk.len() > 1 { symbol(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { symbol(n) } else { '=' });
    }
    out
}

/// For the fuzz targets: the attributes a capture of `names` and `body_cap`
/// bytes records for a message (names are not validated here).
pub(crate) fn fuzz_attributes(
    names: &[&str],
    body_cap: usize,
    headers: &HeaderMap,
    payload: &[u8],
) -> Vec<KeyValue> {
    let capture = Capture::from_parts(names.iter().copied(), Some(body_cap));
    capture.attributes(Some(headers), payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(headers: &[&'static str], body: Option<usize>) -> Capture {
        Capture::new(&CaptureConfig {
            headers: headers.iter().map(|h| std::borrow::Cow::Borrowed(*h)).collect(),
            body,
        })
    }

    fn get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    #[test]
    fn nothing_is_captured_by_default() {
        let off = capture(&[], None);
        assert!(off.is_off());
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", "acme");
        assert!(off.attributes(Some(&headers), b"secret").is_empty());
    }

    #[test]
    fn allow_listed_headers_ignore_case_and_keep_every_value() {
        let mut headers = HeaderMap::new();
        headers.append("X-Tenant", "acme");
        headers.append("X-Tenant", "globex");
        headers.insert("authorization", "Bearer secret");
        let attributes = capture(&["x-TENANT", "x-missing"], None).attributes(Some(&headers), b"");
        assert_eq!(attributes.len(), 1, "{attributes:?}");
        assert_eq!(
            get(&attributes, "messaging.nats.message.header.x-tenant"),
            Some(&Value::Array(Array::String(vec!["acme".into(), "globex".into()])))
        );
    }

    #[test]
    fn long_header_values_are_cut_on_a_character_boundary() {
        let mut headers = HeaderMap::new();
        let long = "é".repeat(MAX_HEADER_VALUE_LEN);
        headers.insert("x-long", long.as_str());
        let attributes = capture(&["x-long"], None).attributes(Some(&headers), b"");
        let Some(Value::Array(Array::String(values))) =
            get(&attributes, "messaging.nats.message.header.x-long")
        else {
            panic!("{attributes:?}")
        };
        assert_eq!(values[0].as_str(), "é".repeat(MAX_HEADER_VALUE_LEN / 2));
    }

    #[test]
    fn bodies_are_cut_at_the_cap_on_a_character_boundary() {
        let body = |payload: &[u8], cap| {
            let mut out = Vec::new();
            body_attributes(payload, cap, &mut out);
            (
                get(&out, BODY_ATTRIBUTE).map(|v| v.as_str().into_owned()),
                get(&out, BODY_ENCODING_ATTRIBUTE).map(|v| v.as_str().into_owned()),
                get(&out, BODY_TRUNCATED_ATTRIBUTE).cloned(),
            )
        };
        let text =
            |s: &str, truncated| (Some(s.to_owned()), Some("utf-8".to_owned()), Some(Value::Bool(truncated)));
        assert_eq!(body(b"hello", 256), text("hello", false));
        assert_eq!(body(b"hello, world", 5), text("hello", true));
        assert_eq!(body("ééé".as_bytes(), 3), text("é", true), "the cap falls inside the second `é`");
        assert_eq!(body("ééé".as_bytes(), 1), text("", true));
        assert_eq!(body(b"", 4), text("", false));
        let binary = |s: &str, truncated| {
            (Some(s.to_owned()), Some("base64".to_owned()), Some(Value::Bool(truncated)))
        };
        assert_eq!(body(&[0xff, 0x00, 0x01], 16), binary("/wAB", false));
        assert_eq!(body(&[0xff, 0x00, 0x01, 0x02], 2), binary("/wA=", true));
        // Ends inside a character and is not longer: not UTF-8.
        assert_eq!(body(&"é".as_bytes()[..1], 16), binary("ww==", false));
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let config = |headers: &[&'static str], body| CaptureConfig {
            headers: headers.iter().map(|h| std::borrow::Cow::Borrowed(*h)).collect(),
            body,
        };
        assert!(config(&["x-tenant", "Nats-Msg-Id"], Some(256)).validate().is_ok());
        assert!(config(&[""], None).validate().is_err());
        assert!(config(&["x tenant"], None).validate().is_err());
        assert!(config(&["x:tenant"], None).validate().is_err());
        assert!(config(&["x-tenant", "X-Tenant"], None).validate().is_err());
        assert!(config(&[], Some(0)).validate().is_err());
        assert!(config(&[], Some(MAX_BODY_CAPTURE + 1)).validate().is_err());
    }
}
