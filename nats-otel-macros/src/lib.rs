//! placeholder
use proc_macro::TokenStream;
#[proc_macro_attribute]
pub fn nats_subscribe(_a: TokenStream, i: TokenStream) -> TokenStream {
    i
}
