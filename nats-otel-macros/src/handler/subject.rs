//! Handler subjects: wildcards and `{capture}` tokens, checked at compile time.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitStr;

use crate::diagnostics::{Diagnostics, subspan};

/// A `{name}` token of a handler subject: the handler argument of that name is
/// parsed from the token at `index`.
pub(crate) struct Capture {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) span: Span,
}

/// A handler subject as the runtime needs it: the pattern subscribed to (captures
/// as `*`), the template when there are captures, and the captures.
pub(crate) struct HandlerSubject {
    pub(crate) pattern: String,
    pub(crate) template: Option<String>,
    pub(crate) captures: Vec<Capture>,
    pub(crate) span: Span,
}

impl HandlerSubject {
    /// Parses `lit` with the shared grammar; errors are spanned at the offending part.
    pub(crate) fn parse(lit: &LitStr, diagnostics: &mut Diagnostics) -> Option<Self> {
        let value = lit.value();
        let parsed = match nats_otel_rules::Subject::parse(&value, nats_otel_rules::Usage::Template) {
            Ok(parsed) => parsed,
            Err(e) => {
                diagnostics.error_with_help(subspan(lit, e.range.clone()), e.message(), e.help());
                return None;
            }
        };
        let captures: Vec<Capture> = parsed
            .segments()
            .iter()
            .enumerate()
            .filter_map(|(index, segment)| match segment.token {
                nats_otel_rules::Token::Capture(name) => {
                    Some(Capture { name: name.to_owned(), index, span: subspan(lit, segment.range.clone()) })
                }
                _ => None,
            })
            .collect();
        let template = (!captures.is_empty()).then(|| value.clone());
        Some(Self { pattern: parsed.pattern(), template, captures, span: lit.span() })
    }

    /// `.template("…")` on the runtime builder, when there are captures.
    pub(crate) fn template_call(&self) -> TokenStream {
        self.template.as_ref().map(|t| quote!(.template(#t))).unwrap_or_default()
    }

    /// A compile-time check that every subject this handler receives matches the
    /// pattern of `message`, spanned at the subject.
    pub(crate) fn covered_by(&self, message: &syn::Type, krate: &syn::Path) -> TokenStream {
        let pattern = &self.pattern;
        let shown = self.template.as_deref().unwrap_or(pattern);
        let ty = quote!(#message).to_string().replace(' ', "");
        let failure = format!(
            "the subject `{shown}` is not covered by the subject of `{ty}`: \
             this handler would receive messages that are not `{ty}`; \
             use a subject that `{ty}`'s template matches, or drop `subject` to use the message's own pattern"
        );
        // The call is spanned at the subject, so rustc points there; the runtime's
        // path is imported first, as its tokens are not from the user's code.
        let check =
            quote_spanned! {self.span=> __nats_otel_assert_covers(__NATS_OTEL_PATTERN, #pattern, #failure) };
        quote! {
            const _: () = {
                use #krate::__private::assert_covers as __nats_otel_assert_covers;
                const __NATS_OTEL_PATTERN: &str = <#message as #krate::__private::NatsMessage>::PATTERN;
                #check
            };
        }
    }
}
