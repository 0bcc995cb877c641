//! `service_name!` and `service_version!`: a service's literal identity checked
//! at compile time with the rule book the runtime checks it with at start.

use proc_macro2::TokenStream;
use quote::quote;

use crate::diagnostics::{Diagnostics, subspan};

/// Which part of the identity a literal is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Name,
    Version,
}

/// The literal itself when the rules accept it, else a spanned error.
pub(crate) fn expand(input: TokenStream, part: Part) -> TokenStream {
    let literal: syn::LitStr = match syn::parse2(input) {
        Ok(literal) => literal,
        Err(e) => {
            let what = match part {
                Part::Name => "a service name as a string literal: `service_name!(\"pricing\")`",
                Part::Version => "a version as a string literal: `service_version!(\"1.2.0\")`",
            };
            return syn::Error::new(e.span(), format!("expected {what}")).to_compile_error();
        }
    };
    let value = literal.value();
    let checked = match part {
        Part::Name => nats_otel_rules::validate_service_name(&value),
        Part::Version => nats_otel_rules::validate_service_version(&value),
    };
    match checked {
        Ok(()) => quote!(#literal),
        Err(e) => {
            let mut diagnostics = Diagnostics::default();
            diagnostics.error_with_help(subspan(&literal, e.range.clone()), e.message(), e.help());
            // The literal still stands where it was: the one error is the only one.
            let errors = diagnostics.to_compile_errors();
            quote!({ #errors #literal })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_literals_expand_to_themselves_and_others_to_errors() {
        assert_eq!(expand(quote!("pricing-eu"), Part::Name).to_string(), "\"pricing-eu\"");
        assert_eq!(expand(quote!("1.2.0-rc.1"), Part::Version).to_string(), "\"1.2.0-rc.1\"");
        let error = expand(quote!("pricing.eu"), Part::Name).to_string();
        assert!(error.contains("compile_error") && error.contains("not allowed"), "{error}");
        let error = expand(quote!("v1.2"), Part::Version).to_string();
        assert!(error.contains("semantic version"), "{error}");
        let error = expand(quote!(pricing), Part::Name).to_string();
        assert!(error.contains("string literal"), "{error}");
    }
}
