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
        self.0
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.first())
            .map(HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes propagation fields into a NATS [`HeaderMap`], replacing existing values
/// of the same fields and keeping every other header the caller set.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators only produce valid names and values; if one ever does not,
        // dropping that field is better than failing the publish.
        let (Ok(name), Ok(value)) = (HeaderName::try_from(key), value.parse::<HeaderValue>()) else {
            return;
        };
        self.0.insert(name, value);
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
