//! The typed model of a `#[derive(NatsMessage)]` / `#[derive(NatsPayload)]`
//! type: its `#[nats(...)]` options, and what the expansion needs of the type.

use proc_macro2::Span;
use syn::{DeriveInput, LitStr};

/// Which derive is expanding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Payload,
}

/// A type deriving `NatsMessage` or `NatsPayload`.
pub(crate) struct MessageType<'a> {
    pub(crate) kind: Kind,
    pub(crate) input: &'a DeriveInput,
    /// `subject = "orders.{region}.created"`, parsed; `None` when left out or
    /// when it does not parse.
    pub(crate) subject: Option<Template>,
    /// `stream = "ORDERS"`.
    pub(crate) stream: Option<LitStr>,
    /// `reply = Quote`.
    pub(crate) reply: Option<syn::Type>,
    pub(crate) codec: Codec,
    /// `crate = "path"`; `::nats_otel_runtime` by default.
    pub(crate) krate: syn::Path,
}

/// `codec = …`: how the payload is encoded.
pub(crate) enum Codec {
    /// `"json"`, the default: serde JSON.
    Json,
    /// `"raw"`: the payload as it is, for a newtype over bytes.
    Raw {
        /// The `"raw"` literal: errors point there.
        span: Span,
        /// The newtype's field type; `None` when the type is not a newtype.
        field: Option<syn::Type>,
    },
    /// A type implementing `Codec<Self>`.
    Custom(syn::Path),
}

/// A message subject template, as the shared grammar parsed it.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    /// The subject with captures as `*`.
    pub(crate) pattern: String,
    pub(crate) segments: Vec<TemplateSegment>,
}

/// One token of a [`Template`].
pub(crate) enum TemplateSegment {
    Literal(String),
    /// `{field}`: the field's value, written where the capture is.
    Capture {
        field: String,
        span: Span,
    },
}

impl Template {
    pub(crate) fn has_captures(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, TemplateSegment::Capture { .. }))
    }
}

impl MessageType<'_> {
    /// Whether the type's fields can fill the captures: captures name fields,
    /// so they need a struct with named fields.
    pub(crate) fn captures_fit_fields(&self) -> bool {
        let named =
            matches!(&self.input.data, syn::Data::Struct(s) if matches!(s.fields, syn::Fields::Named(_)));
        named || !self.subject.as_ref().is_some_and(Template::has_captures)
    }
}
