//! Procedural macros of nats-otel. Depend on `nats-otel-runtime`, which re-exports
//! them with their documentation; this crate's API is an implementation detail.
//!
//! Set `NATS_OTEL_MACROS_DEBUG=1` while building to print every expansion.

mod args;
mod diagnostics;
mod handler_fn;
mod subscribe;

use proc_macro::TokenStream;

/// See `nats_otel_runtime::nats_subscribe`.
#[proc_macro_attribute]
pub fn nats_subscribe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("nats_subscribe", subscribe::expand(args.into(), item.into()))
}

/// The one funnel every macro goes through: prints the expansion on request.
fn expand(name: &str, tokens: proc_macro2::TokenStream) -> TokenStream {
    if std::env::var_os("NATS_OTEL_MACROS_DEBUG").is_some() {
        eprintln!("#[{name}] expands to:\n{tokens}\n");
    }
    tokens.into()
}
