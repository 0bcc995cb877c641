//! W3C Trace Context (`traceparent`, `tracestate`) without per-message formatting.
//!
//! The SDK's `TraceContextPropagator` writes `traceparent` with `format!` and
//! reads it by splitting it into a `Vec`: about 5,600 instructions a publish and
//! 4,000 a delivery, paid on every message by every instrumentation.
//! [`TraceContextPropagator`] writes the header into one allocation and reads the
//! canonical version-00 form in place. Every other input (future versions, odd
//! spacing, malformed values) is read by the SDK's rules, written again here so
//! that the runtime needs only the OpenTelemetry API: what comes out is what the
//! SDK makes of the same headers. A test over every one-byte edit of a canonical
//! value, and the `trace_context` fuzz target, hold the two equal.
//!
//! `telemetry::init` (feature `telemetry`) installs it for `OTEL_PROPAGATORS=tracecontext`
//! (the default). Installed by hand:
//!
//! ```
//! use nats_otel_runtime::trace_context::TraceContextPropagator;
//! use opentelemetry::propagation::TextMapCompositePropagator;
//! use opentelemetry_sdk::propagation::BaggagePropagator;
//!
//! opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
//!     Box::new(TraceContextPropagator::new()),
//!     Box::new(BaggagePropagator::new()),
//! ]));
//! ```

use std::str::FromStr;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// `00-{32 hex}-{16 hex}-{2 hex}`.
const CANONICAL_LEN: usize = 55;

/// The highest `traceparent` version read (`ff` is invalid).
const MAX_VERSION: u8 = 254;

/// The W3C Trace Context propagator: the SDK's behaviour, a fraction of its cost.
///
/// ```
/// use std::collections::HashMap;
/// use nats_otel_runtime::trace_context::TraceContextPropagator;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
///
/// let headers = HashMap::from([(
///     "traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// )]);
/// let cx = TraceContextPropagator::new().extract(&headers);
/// assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
///
/// let mut out = HashMap::new();
/// TraceContextPropagator::new().inject_context(&cx, &mut out);
/// assert_eq!(out["traceparent"], headers["traceparent"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// A new propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            injector.set(TRACEPARENT, traceparent(span_context));
            injector.set(TRACESTATE, span_context.trace_state().header());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let traceparent = extractor.get(TRACEPARENT).unwrap_or_default();
        let Some((trace_id, span_id, flags)) =
            parse_canonical(traceparent).or_else(|| parse_any(traceparent))
        else {
            return cx.clone();
        };
        // The SDK's rule: a `tracestate` that does not parse is dropped, not the parent.
        let trace_state = extractor
            .get(TRACESTATE)
            .map(|value| TraceState::from_str(value).unwrap_or_default())
            .unwrap_or_default();
        cx.with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, trace_state))
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]))
    }
}

/// `00-{trace id}-{span id}-{flags}`; of the flags only `sampled` travels, as
/// with the SDK. Written into a stack buffer and copied out once: pushing
/// `char`s costs a capacity check and a UTF-8 encoding for every digit.
fn traceparent(span_context: &SpanContext) -> String {
    let mut value = [b'-'; CANONICAL_LEN];
    value[..2].copy_from_slice(b"00");
    write_hex(&mut value[3..35], &span_context.trace_id().to_bytes());
    write_hex(&mut value[36..52], &span_context.span_id().to_bytes());
    write_hex(&mut value[53..], &[(span_context.trace_flags() & TraceFlags::SAMPLED).to_u8()]);
    // Hex digits and dashes are ASCII, so this never falls back.
    String::from_utf8(value.to_vec()).unwrap_or_default()
}

/// Two lower-case hex digits for each of `bytes` into `out`.
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// The ids and flags of a canonical version-00 `traceparent` with non-zero ids;
/// `None` for anything else, which [`parse_any`] then judges.
fn parse_canonical(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let bytes: &[u8; CANONICAL_LEN] = value.trim().as_bytes().try_into().ok()?;
    if !bytes.starts_with(b"00-") || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_bytes(decode_hex(&bytes[3..35])?);
    let span_id = SpanId::from_bytes(decode_hex(&bytes[36..52])?);
    let [flags] = decode_hex(&bytes[53..55])?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, TraceFlags::new(flags) & TraceFlags::SAMPLED))
}

/// Any other `traceparent`, by the SDK's rules: `-`-separated fields (a trailing
/// `-` ignored), a version below `ff` (exactly four fields for `00`), ids and
/// flags in hex without upper case (as Rust's radix parsing reads them, so a
/// leading `+` or fewer digits pass, as in the SDK), non-zero ids.
fn parse_any(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let parts: Vec<&str> = value.trim().split_terminator('-').collect();
    let [version, trace_id, span_id, flags, ..] = parts[..] else { return None };
    let version = u8::from_str_radix(version, 16).ok()?;
    if version > MAX_VERSION || (version == 0 && parts.len() != 4) {
        return None;
    }
    let lower = |part: &str| !part.chars().any(|c| c.is_ascii_uppercase());
    if !(lower(trace_id) && lower(span_id) && lower(flags)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, TraceFlags::new(flags) & TraceFlags::SAMPLED))
}

/// `N` bytes from `2 * N` lower-case hex digits (W3C allows no upper case).
fn decode_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = nibble(*high)? << 4 | nibble(*low)?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry_sdk::propagation::TraceContextPropagator as SdkTraceContext;

    use super::*;

    const CANONICAL: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The span context each propagator extracts from the same headers.
    fn both(traceparent: &str, tracestate: Option<&str>) -> (SpanContext, SpanContext) {
        let mut headers = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
        if let Some(state) = tracestate {
            headers.insert(TRACESTATE.to_owned(), state.to_owned());
        }
        let ours = TraceContextPropagator::new().extract(&headers);
        let sdk = SdkTraceContext::new().extract(&headers);
        let context = |cx: &Context| cx.span().span_context().clone();
        (context(&ours), context(&sdk))
    }

    #[test]
    fn canonical_value_is_read_in_place() {
        let (ours, sdk) = both(CANONICAL, Some("vendor=a,other=b"));
        assert_eq!(ours, sdk);
        assert!(ours.is_valid() && ours.is_remote() && ours.is_sampled());
        assert_eq!(ours.trace_id(), TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736));
        assert_eq!(ours.span_id(), SpanId::from(0x00f0_67aa_0ba9_02b7));
        assert_eq!(ours.trace_state().get("vendor"), Some("a"));
        assert_eq!(parse_canonical(CANONICAL).map(|(_, _, flags)| flags), Some(TraceFlags::SAMPLED));
    }

    #[test]
    fn agrees_with_the_sdk_on_every_one_byte_edit_of_a_canonical_value() {
        // Every replacement, deletion and insertion of one byte, at every position,
        // with the bytes that matter to the grammar and some that must not pass.
        let alphabet = b"0123456789abcdefABCDEFgz-_ \t+\xff";
        let canonical = CANONICAL.as_bytes();
        let mut cases = 0;
        for at in 0..=canonical.len() {
            for &byte in alphabet {
                let mut edits = Vec::new();
                if at < canonical.len() {
                    let mut replaced = canonical.to_vec();
                    replaced[at] = byte;
                    edits.push(replaced);
                    let mut deleted = canonical.to_vec();
                    deleted.remove(at);
                    edits.push(deleted);
                }
                let mut inserted = canonical.to_vec();
                inserted.insert(at, byte);
                edits.push(inserted);
                for edit in edits {
                    let value = String::from_utf8_lossy(&edit);
                    for state in [None, Some("k=v"), Some("not a tracestate")] {
                        let (ours, sdk) = both(&value, state);
                        assert_eq!(ours, sdk, "traceparent {value:?}, tracestate {state:?}");
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 4_000, "{cases} cases");
    }

    #[test]
    fn agrees_with_the_sdk_on_its_own_edge_cases() {
        for value in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
            "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-XYZxsf09",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-abc-def-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            let (ours, sdk) = both(value, Some("k=v"));
            assert_eq!(ours, sdk, "{value:?}");
        }
    }

    #[test]
    fn injects_what_the_sdk_injects() {
        let ids = [
            (1, 1),
            (0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736, 0x00f0_67aa_0ba9_02b7),
            (u128::MAX, u64::MAX),
        ];
        for (trace_id, span_id) in ids {
            for flags in [0x00, 0x01, 0x02, 0x03, 0xff] {
                for state in ["", "k=v", "a=1,b=2"] {
                    let span_context = SpanContext::new(
                        TraceId::from(trace_id),
                        SpanId::from(span_id),
                        TraceFlags::new(flags),
                        true,
                        TraceState::from_str(state).unwrap_or_default(),
                    );
                    let cx = Context::new().with_remote_span_context(span_context);
                    let (mut ours, mut sdk) = (HashMap::new(), HashMap::new());
                    TraceContextPropagator::new().inject_context(&cx, &mut ours);
                    SdkTraceContext::new().inject_context(&cx, &mut sdk);
                    assert_eq!(ours, sdk);
                    assert_eq!(ours[TRACEPARENT].len(), CANONICAL_LEN);
                }
            }
        }
        let mut nothing = HashMap::new();
        TraceContextPropagator::new().inject_context(&Context::new(), &mut nothing);
        assert!(nothing.is_empty(), "no span, no headers");
    }

    #[test]
    fn fields_are_the_w3c_headers() {
        let propagator = TraceContextPropagator::new();
        let fields: Vec<&str> = propagator.fields().collect();
        assert_eq!(fields, [TRACEPARENT, TRACESTATE]);
    }
}
