//! Collects every error of one macro call, so the user sees them all at once.

use proc_macro2::{Span, TokenStream};
use std::ops::Range;

/// The errors of one macro call.
#[derive(Default)]
pub(crate) struct Diagnostics {
    errors: Option<syn::Error>,
}

impl Diagnostics {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    pub(crate) fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// An error with a `help:` line, rustc style.
    pub(crate) fn error_with_help(
        &mut self,
        span: Span,
        message: impl std::fmt::Display,
        help: impl std::fmt::Display,
    ) {
        self.error(span, with_help(message, help));
    }

    /// The errors as `compile_error!` invocations.
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        self.errors.as_ref().map(syn::Error::to_compile_error).unwrap_or_default()
    }

    /// Each error's message, in the order reported (for unit tests).
    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.errors.iter().flat_map(|errors| errors.clone().into_iter().map(|e| e.to_string())).collect()
    }
}

/// The span of bytes `range` inside string literal `lit`, where the compiler can
/// point inside a literal (nightly), else the whole literal.
pub(crate) fn subspan(lit: &syn::LitStr, range: Range<usize>) -> Span {
    let token = lit.token();
    let repr = token.to_string();
    // Only plain literals map value bytes 1:1 onto source bytes after the quote.
    if repr.starts_with('"')
        && !repr.contains('\\')
        && let Some(span) = token.subspan(range.start + 1..range.end.max(range.start + 1) + 1)
    {
        return span;
    }
    lit.span()
}

/// Formats an error with a `help:` line, rustc style.
pub(crate) fn with_help(message: impl std::fmt::Display, help: impl std::fmt::Display) -> String {
    format!("{message}\n\nhelp: {help}")
}
