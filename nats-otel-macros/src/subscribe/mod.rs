//! `#[nats_subscribe]`: a core NATS subscription handler, as parse ([`parse`])
//! → model ([`model`]) → check ([`check`]) → expand ([`expand`]).

mod check;
mod expand;
mod model;
mod parse;
#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use syn::{Ident, ItemFn};

use crate::args::Args;
use crate::diagnostics::Diagnostics;
use crate::handler::options::HandlerOptions;
use crate::handler::subject::{Capture, HandlerSubject};
use crate::handler::{HandlerAttribute, expand_attribute};
use model::Subscribe;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute::<Subscribe>(args, item)
}

impl HandlerAttribute for Subscribe {
    const NAME: &'static str = "nats_subscribe";
    const OPTIONS: &'static [&'static str] =
        &["subject", "message", "queue", "concurrency", "trace", "capture_headers", "capture_body", "crate"];

    fn parse(args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Self {
        Subscribe::parse(args, item, diagnostics)
    }

    fn check(&self, diagnostics: &mut Diagnostics) {
        Subscribe::check(self, diagnostics);
    }

    fn options(&self) -> &HandlerOptions {
        &self.options
    }

    fn subjects(&self) -> &[HandlerSubject] {
        self.subject.as_slice()
    }

    fn captures(&self) -> &[Capture] {
        self.subject.as_ref().map_or(&[], |s| &s.captures)
    }

    fn endpoint(&self, name: &Ident) -> Option<TokenStream> {
        Subscribe::endpoint(self, name)
    }
}
