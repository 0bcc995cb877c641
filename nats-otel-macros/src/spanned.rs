//! A value of the model with the span of the tokens it was written as, so a
//! check that rejects the value points at what the user wrote.

use proc_macro2::Span;

/// `value`, written at `span`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

impl<T> Spanned<T> {
    pub(crate) fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}
