//! `capture_headers = ["x-tenant"]` and `capture_body = 256`: opt-in capture of
//! header values and payload bytes on `process` spans, shared by both attribute
//! macros. Expands to the builder calls of the runtime's endpoint types.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, Lit};

use crate::args::{Args, lit_str_list};
use crate::diagnostics::{Diagnostics, subspan, with_help};

/// Must match `nats_otel_runtime::capture::MAX_BODY_CAPTURE`.
const MAX_BODY_CAPTURE: u64 = 64 * 1024;

/// Takes and checks both options; the builder calls to append to the endpoint.
pub(crate) fn options(args: &mut Args, diagnostics: &mut Diagnostics) -> TokenStream {
    let headers = args.take("capture_headers", diagnostics).and_then(|(key, value)| {
        let names = lit_str_list(&key, &value, diagnostics)?;
        let mut seen: Vec<String> = Vec::new();
        for lit in &names {
            let name = lit.value();
            if name.is_empty() {
                diagnostics.error(
                    lit.span(),
                    with_help(
                        "header name is empty",
                        "name a header, e.g. `capture_headers = [\"x-tenant\"]`",
                    ),
                );
            } else if let Some((i, c)) = name.char_indices().find(|&(_, c)| !c.is_ascii_graphic() || c == ':')
            {
                diagnostics.error(
                    subspan(lit, i..i + c.len_utf8()),
                    with_help(
                        format!("`{}` is not a header name: it contains {c:?}", name.escape_debug()),
                        "header names are visible ASCII characters other than `:`, e.g. `x-tenant`",
                    ),
                );
            } else if seen.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                diagnostics.error(
                    lit.span(),
                    with_help(
                        format!("header `{name}` is listed twice"),
                        "header names match case-insensitively; remove one",
                    ),
                );
            }
            seen.push(name);
        }
        Some(quote!(.capture_headers([#(#names),*])))
    });
    let body = args.take("capture_body", diagnostics).and_then(|(key, value)| {
        let Expr::Lit(syn::ExprLit { lit: Lit::Int(lit), .. }) = &value else {
            diagnostics.error(
                value.span(),
                with_help(
                    format!("`{key}` takes the most bytes to record, as an integer literal"),
                    format!("write `{key} = 256`"),
                ),
            );
            return None;
        };
        match lit.base10_parse::<u64>() {
            Ok(0) => {
                diagnostics.error(
                    lit.span(),
                    with_help(
                        "`capture_body = 0` records nothing",
                        "remove the option, or give a size such as `256`",
                    ),
                );
                None
            }
            Ok(n) if n > MAX_BODY_CAPTURE => {
                diagnostics.error(
                    lit.span(),
                    with_help(
                        format!(
                            "`capture_body = {n}` is more than the {MAX_BODY_CAPTURE} bytes a span may record"
                        ),
                        "record a prefix of the payload, e.g. `capture_body = 1024`",
                    ),
                );
                None
            }
            Ok(n) => {
                let n = n as usize;
                Some(quote!(.capture_body(#n)))
            }
            Err(e) => {
                diagnostics.error(lit.span(), e);
                None
            }
        }
    });
    quote!(#headers #body)
}
