//! `capture_headers = ["x-tenant"]` and `capture_body = 256`: opt-in capture of
//! header values and payload bytes on `process` spans, shared by both attribute
//! macros. The rules are the runtime's own, from `nats_otel_rules`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

use crate::args::Args;
use crate::diagnostics::{Diagnostics, subspan};
use crate::spanned::Spanned;

/// What a handler's `process` spans record of each message.
#[derive(Default)]
pub(crate) struct SpanCapture {
    /// `capture_headers`: header names, as written.
    pub(crate) headers: Option<Vec<LitStr>>,
    /// `capture_body`: the most payload bytes to record.
    pub(crate) body: Option<Spanned<usize>>,
}

impl SpanCapture {
    pub(crate) fn parse(args: &mut Args, diagnostics: &mut Diagnostics) -> Self {
        let headers = args.take("capture_headers", diagnostics).and_then(|arg| arg.strings(diagnostics));
        let body = args.take("capture_body", diagnostics).and_then(|arg| {
            arg.integer_described(diagnostics, "the most bytes to record, as an integer literal", "256")
        });
        Self { headers, body }
    }

    /// Header names as NATS accepts them, each once; a body cap the runtime allows.
    pub(crate) fn check(&self, diagnostics: &mut Diagnostics) {
        if let Some(headers) = &self.headers {
            let names: Vec<String> = headers.iter().map(LitStr::value).collect();
            for error in nats_otel_rules::capture_header_errors(&names) {
                let Some(lit) = headers.get(error.index) else { continue };
                let span = match error.kind {
                    nats_otel_rules::HeaderNameErrorKind::ForbiddenCharacter(_) => {
                        subspan(lit, error.range.clone())
                    }
                    _ => lit.span(),
                };
                diagnostics.error_with_help(span, error.message(), error.help());
            }
        }
        if let Some(body) = &self.body
            && let Err(error) = nats_otel_rules::validate_body_capture(body.value)
        {
            diagnostics.error_with_help(body.span, error.message(), error.help());
        }
    }

    /// The builder calls to append to the endpoint.
    pub(crate) fn builder_calls(&self) -> TokenStream {
        let headers = self.headers.as_ref().map(|names| quote!(.capture_headers([#(#names),*])));
        let body = self.body.map(|body| {
            let n = body.value;
            quote!(.capture_body(#n))
        });
        quote!(#headers #body)
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_and_check(tokens: TokenStream) -> (SpanCapture, Vec<String>) {
        let mut diagnostics = Diagnostics::default();
        let mut args =
            Args::parse(tokens, &["capture_headers", "capture_body"]).unwrap_or_else(|e| panic!("{e}"));
        let capture = SpanCapture::parse(&mut args, &mut diagnostics);
        args.finish(&mut diagnostics);
        capture.check(&mut diagnostics);
        (capture, diagnostics.messages())
    }

    #[test]
    fn parses_into_the_model() {
        let (capture, errors) =
            parse_and_check(quote!(capture_headers = ["x-tenant", "x-region"], capture_body = 256));
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<String> = capture.headers.iter().flatten().map(LitStr::value).collect();
        assert_eq!(names, ["x-tenant", "x-region"]);
        assert_eq!(capture.body.map(|b| b.value), Some(256));
        let calls = capture.builder_calls().to_string();
        assert_eq!(
            calls,
            quote!(.capture_headers(["x-tenant", "x-region"]) .capture_body(256usize)).to_string()
        );
    }

    #[test]
    fn a_single_name_is_a_list() {
        let (capture, errors) = parse_and_check(quote!(capture_headers = "x-tenant"));
        assert!(errors.is_empty());
        assert_eq!(capture.headers.map(|h| h.len()), Some(1));
        assert!(capture.body.is_none());
    }

    #[test]
    fn checks_report_every_bad_name_and_the_cap() {
        let (_, errors) =
            parse_and_check(quote!(capture_headers = ["", "a b", "x", "X"], capture_body = 70000));
        let first_lines: Vec<&str> = errors.iter().filter_map(|e| e.lines().next()).collect();
        assert_eq!(
            first_lines,
            [
                "header name is empty",
                "`a b` is not a header name: it contains a space",
                "header `X` is listed twice",
                "`capture_body = 70000` is more than the 65536 bytes a span may record",
            ]
        );
    }

    #[test]
    fn zero_body_and_wrong_shapes() {
        let (_, errors) = parse_and_check(quote!(capture_body = 0));
        assert_eq!(
            errors,
            ["`capture_body = 0` records nothing\n\nhelp: remove the option, or give a size such as `256`"]
        );
        let (_, errors) = parse_and_check(quote!(capture_body = "256", capture_headers = [1]));
        assert_eq!(
            errors,
            [
                "`capture_headers` takes a string literal\n\nhelp: write `capture_headers = \"…\"`",
                "`capture_body` takes the most bytes to record, as an integer literal\n\nhelp: write `capture_body = 256`",
            ]
        );
    }
}
