//! What an endpoint records of each message beyond the defaults: an allow-list
//! of headers and a capped prefix of the body (see [`capture`](crate::capture)).

use std::borrow::Cow;

/// What an endpoint captures, as configured (nothing by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CaptureConfig {
    pub(crate) headers: Vec<Cow<'static, str>>,
    pub(crate) body: Option<usize>,
}

impl CaptureConfig {
    /// Header names as NATS accepts them, each once; a body cap in
    /// `1..=MAX_BODY_CAPTURE`: the rule book's checks, as the macros apply them.
    pub(crate) fn validate(&self) -> Result<(), String> {
        nats_otel_rules::validate_capture_headers(&self.headers)
            .map_err(|e| format!("capture_headers: {e}"))?;
        if let Some(max_bytes) = self.body {
            nats_otel_rules::validate_body_capture(max_bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
