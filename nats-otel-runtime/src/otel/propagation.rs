//! Trace-context propagation through NATS headers, via the globally configured
//! OpenTelemetry propagator (W3C `traceparent`/`tracestate` and baggage by default
//! once installed; B3 and others when the application installs them).

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;

/// Reads propagation fields from a NATS [`HeaderMap`].
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // A scan of the few headers a message carries: unlike `HeaderMap::get(&str)`
        // it neither allocates a `HeaderName` nor panics on an odd key, and it
        // accepts `Traceparent` from publishers that capitalise HTTP-style.
        let value = self
            .0
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.first())
            .map(HeaderValue::as_str)?;
        filter_traceparent(key, value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Hides a `traceparent` that is not well-formed W3C from the propagator.
///
/// W3C Trace Context says a receiver MUST ignore a malformed `traceparent`; the
/// SDK's parser accepts some (`00-abc-def-01` parses as trace id `0xabc`), which
/// would attach unrelated messages to a made-up trace.
pub(crate) fn filter_traceparent<'a>(key: &str, value: &'a str) -> Option<&'a str> {
    if key.eq_ignore_ascii_case("traceparent") && !is_well_formed_traceparent(value) {
        return None;
    }
    Some(value)
}

/// `version-traceid-parentid-flags`: 2, 32, 16 and 2 lower-case hex digits; a
/// future version may append `-…` fields after the first 55 characters.
pub fn is_well_formed_traceparent(value: &str) -> bool {
    let value = value.trim();
    let bytes = value.as_bytes();
    if bytes.len() < 55 || (bytes.len() > 55 && (bytes[55] != b'-' || &bytes[..2] == b"00")) {
        return false;
    }
    // Without early exits, so the check compiles to a few vector instructions: it
    // runs on every delivery.
    let hex = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .fold(true, |all, &b| all & ((b.wrapping_sub(b'0') < 10) | (b.wrapping_sub(b'a') < 6)))
    };
    hex(0..2)
        && &bytes[..2] != b"ff"
        && bytes[2] == b'-'
        && hex(3..35)
        && bytes[35] == b'-'
        && hex(36..52)
        && bytes[52] == b'-'
        && hex(53..55)
}

/// The remote parent carried in a JSON envelope payload (see
/// [`Envelope`](crate::Envelope)), when valid.
pub(crate) fn envelope_parent(payload: &[u8]) -> Option<Context> {
    use crate::handler::extract::TraceFields;
    struct Fields<'a>(TraceFields<'a>);
    impl Extractor for Fields<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            let value = match key {
                "traceparent" => self.0.traceparent.as_deref(),
                "tracestate" => self.0.tracestate.as_deref(),
                _ => None,
            }?;
            filter_traceparent(key, value)
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }

    let carrier = Fields(crate::handler::extract::envelope_trace_fields(payload)?);
    carrier.get("traceparent")?;
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Writes propagation fields into a NATS [`HeaderMap`], replacing existing values
/// of the same fields and keeping every other header the caller set.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators only produce valid names and values; if one ever does not,
        // dropping that field is better than failing the publish.
        let Some(name) = header_name(key) else { return };
        // W3C trace context: receivers accept an empty `tracestate`, senders should
        // avoid it. Left out, unless it must replace a stale one the caller set
        // (a scan of the few headers: no hashing of the name).
        if value.is_empty() && key == "tracestate" && !self.0.iter().any(|(set, _)| *set == name) {
            return;
        }
        let Some(value) = header_value(value) else { return };
        self.0.insert(name, value);
    }
}

/// `value` as a header value, without a copy; `None` if it has a line break.
///
/// `HeaderValue::from(String)` looks for line breaks one `char` at a time,
/// about ten instructions a byte, 570 a `traceparent`. `memchr2` finds them
/// with vector instructions in a few dozen; then the value's serde form, which
/// is the string itself (`#[serde(transparent)]`), takes the `String` as it is.
fn header_value(value: String) -> Option<HeaderValue> {
    use serde::Deserialize as _;
    use serde::de::IntoDeserializer as _;
    if memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_some() {
        return None;
    }
    let value: serde::de::value::StringDeserializer<serde::de::value::Error> = value.into_deserializer();
    HeaderValue::deserialize(value).ok()
}

/// The header for a propagation field: the W3C and baggage names are static (no
/// allocation or validation per message), others are validated.
fn header_name(key: &str) -> Option<HeaderName> {
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
    match key {
        "traceparent" => Some(TRACEPARENT),
        "tracestate" => Some(TRACESTATE),
        "baggage" => Some(BAGGAGE),
        _ => HeaderName::try_from(key).ok(),
    }
}

/// The remote parent carried by `headers`, when there is a valid one.
///
/// Returns `None` for missing or invalid context, so callers start a new root span
/// instead of attaching to an empty context (which would orphan the span).
pub fn extract_parent(headers: Option<&HeaderMap>) -> Option<Context> {
    let headers = headers?;
    if headers.is_empty() {
        return None;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Injects `cx` into `headers` through the global propagator.
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, &mut HeaderInjector(headers)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_must_be_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_well_formed_traceparent(good));
        assert!(is_well_formed_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
        for bad in [
            "",
            "00-abc-def-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "ö0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_well_formed_traceparent(bad), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn injector_writes_fields_and_drops_invalid_ones() {
        let mut headers = HeaderMap::new();
        headers.insert("other", "kept");
        let mut injector = HeaderInjector(&mut headers);
        injector.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
        injector.set("tracestate", String::new());
        injector.set("b3", "1".to_owned());
        assert_eq!(injector.0.get("tracestate"), None, "an empty tracestate is left out");
        injector.set("tracestate", "a=b".to_owned());
        injector.set("tracestate", String::new());
        injector.set("bad:name", "x".to_owned());
        injector.set("baggage", "a=b\r\nX: y".to_owned());
        let get = |k: &str| headers.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(
            get("traceparent").as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(get("tracestate").as_deref(), Some(""));
        assert_eq!(get("b3").as_deref(), Some("1"));
        assert_eq!(get("other").as_deref(), Some("kept"));
        assert_eq!(get("baggage"), None, "a value with a line break is dropped");
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn header_values_are_those_async_nats_makes() {
        // Guards the serde route of `header_value` against a change in async-nats.
        for value in ["", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v,ö=ü", " a "] {
            assert_eq!(header_value(value.to_owned()), Some(HeaderValue::from(value)), "{value:?}");
        }
        for value in ["a\rb", "\n", "a=b\r\nX: y"] {
            assert_eq!(header_value(value.to_owned()), None, "{value:?}");
        }
    }

    #[test]
    fn extractor_hides_malformed_traceparent_and_ignores_case() {
        let mut headers = HeaderMap::new();
        headers.insert("Traceparent", "00-abc-def-01");
        headers.insert("tracestate", "a=b");
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get("traceparent"), None);
        assert_eq!(extractor.get("tracestate"), Some("a=b"));
        assert_eq!(extractor.get("TRACESTATE"), Some("a=b"));
    }
}
