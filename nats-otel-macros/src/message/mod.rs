//! `#[derive(NatsMessage)]` (a type with a subject template, checked at compile
//! time) and `#[derive(NatsPayload)]` (a payload with a codec, e.g. a reply), as
//! parse ([`parse`]) → model ([`model`]) → check ([`check`]) → expand ([`expand`]).

mod check;
mod expand;
mod model;
mod parse;
#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::diagnostics::Diagnostics;
pub(crate) use model::Kind;
use model::MessageType;

/// The derive's expansion, with every error next to it: the trait impls are
/// emitted whatever the errors, so code using the type sees no second error.
pub(crate) fn derive(input: TokenStream, kind: Kind) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut diagnostics = Diagnostics::default();
    let model = MessageType::parse(&input, kind, &mut diagnostics);
    model.check(&mut diagnostics);
    let expanded = model.expand();
    let errors = diagnostics.to_compile_errors();
    quote!(#errors #expanded)
}
