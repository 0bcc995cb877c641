//! Check: the rules on a [`MessageType`]: the stream name (from the rule book
//! the runtime checks too), fields for the captures, a newtype for `"raw"`.

use crate::diagnostics::{Diagnostics, subspan};
use crate::message::model::{Codec, MessageType};

impl MessageType<'_> {
    pub(crate) fn check(&self, diagnostics: &mut Diagnostics) {
        if let Some(stream) = &self.stream
            && let Err(e) = nats_otel_rules::validate_name(&stream.value())
        {
            diagnostics.error_with_help(
                subspan(stream, e.range.clone()),
                format!("stream: {}", e.message()),
                e.help(),
            );
        }
        if !self.captures_fit_fields() {
            diagnostics.error_with_help(
                self.input.ident.span(),
                "subject captures need a struct with named fields",
                "captures like `{region}` name the struct's fields",
            );
        }
        if let Codec::Raw { span, field: None } = &self.codec {
            diagnostics.error_with_help(
                *span,
                "`codec = \"raw\"` needs a newtype over bytes",
                format!("declare `struct {}(Bytes);` (or `Vec<u8>`)", self.input.ident),
            );
        }
    }
}
