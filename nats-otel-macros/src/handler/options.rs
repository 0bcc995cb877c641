//! The options every handler attribute takes: `message`, `trace`, the span
//! capture and `crate`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use crate::args::{Args, Choice};
use crate::diagnostics::Diagnostics;
use crate::handler::span_capture::SpanCapture;
use crate::spanned::Spanned;

/// `trace = "parent" | "link"`: continue the publisher's trace, or start a new
/// one linked to it. The runtime's `TraceMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TraceMode {
    Parent,
    Link,
}

impl Choice for TraceMode {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("parent", TraceMode::Parent), ("link", TraceMode::Link)];

    fn unknown(_: &Ident, text: &str) -> (String, String) {
        (
            format!("unknown trace mode `{text}`"),
            "use `trace = \"parent\"` (default: continue the publisher's trace) or `trace = \"link\"` (new trace, linked)"
                .to_owned(),
        )
    }
}

/// The options shared by `#[nats_subscribe]` and `#[jetstream_consumer]`.
pub(crate) struct HandlerOptions {
    /// `message = Type`: a `NatsMessage` whose pattern the handler takes.
    pub(crate) message: Option<syn::Type>,
    pub(crate) trace: Option<Spanned<TraceMode>>,
    pub(crate) span_capture: SpanCapture,
    /// `crate = "path"`: where the runtime is; `::nats_otel_runtime` by default.
    pub(crate) krate: syn::Path,
}

impl HandlerOptions {
    /// Takes the shared options out of `args`; `message` is taken by each
    /// attribute where it reads it, and passed in.
    pub(crate) fn parse(message: Option<syn::Type>, args: &mut Args, diagnostics: &mut Diagnostics) -> Self {
        let trace = args.take("trace", diagnostics).and_then(|arg| arg.choice(diagnostics));
        let span_capture = SpanCapture::parse(args, diagnostics);
        let krate = args
            .take("crate", diagnostics)
            .and_then(|arg| arg.path(diagnostics))
            .unwrap_or_else(|| syn::parse_quote!(::nats_otel_runtime));
        Self { message, trace, span_capture, krate }
    }

    pub(crate) fn check(&self, diagnostics: &mut Diagnostics) {
        self.span_capture.check(diagnostics);
    }

    /// `#krate::__private`, where the expansion's runtime items are.
    pub(crate) fn private(&self) -> TokenStream {
        let krate = &self.krate;
        quote!(#krate::__private)
    }

    /// The builder calls for `trace` and the span capture, in that order.
    pub(crate) fn builder_calls(&self) -> TokenStream {
        let private = self.private();
        let trace = self.trace.map(|trace| match trace.value {
            TraceMode::Parent => quote!(.trace(#private::TraceMode::Parent)),
            TraceMode::Link => quote!(.trace(#private::TraceMode::Link)),
        });
        let capture = self.span_capture.builder_calls();
        quote!(#trace #capture)
    }
}
