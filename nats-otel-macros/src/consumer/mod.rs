//! `#[jetstream_consumer]`: a durable JetStream pull consumer handler (or an
//! ordered one, for replay), as
//! parse ([`parse`]) → model ([`model`]) → check ([`check`]) → expand
//! ([`expand`]).

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
use model::Consumer;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute::<Consumer>(args, item)
}

impl HandlerAttribute for Consumer {
    const NAME: &'static str = "jetstream_consumer";
    const OPTIONS: &'static [&'static str] = &[
        "stream",
        "durable",
        "ordered",
        "filter",
        "message",
        "deliver",
        "ack_wait",
        "max_deliver",
        "backoff",
        "max_ack_pending",
        "concurrency",
        "batch",
        "batch_size",
        "batch_wait",
        "ack",
        "create",
        "dead_letter",
        "dead_letter_route",
        "trace",
        "settle",
        "capture_headers",
        "capture_body",
        "crate",
    ];

    fn parse(args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Self {
        Consumer::parse(args, item, diagnostics)
    }

    fn check(&self, diagnostics: &mut Diagnostics) {
        Consumer::check(self, diagnostics);
    }

    fn options(&self) -> &HandlerOptions {
        &self.options
    }

    fn subjects(&self) -> &[HandlerSubject] {
        &self.filters
    }

    /// Captures come from the only filter: with several, which token a capture
    /// is would depend on the message.
    fn captures(&self) -> &[Capture] {
        match self.filters.as_slice() {
            [only] if !self.batched() => &only.captures,
            _ => &[],
        }
    }

    fn batched(&self) -> bool {
        self.batch_size.is_some()
    }

    fn endpoint(&self, name: &Ident) -> Option<TokenStream> {
        Consumer::endpoint(self, name)
    }

    fn checks(&self) -> TokenStream {
        self.stream_checks()
    }
}
