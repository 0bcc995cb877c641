//! What every handler attribute shares: the pipeline parse → model → check →
//! expand, the options all of them take, the handler function's checks and
//! the expansion around it.

pub(crate) mod expand;
pub(crate) mod item;
pub(crate) mod options;
pub(crate) mod span_capture;
pub(crate) mod subject;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, ItemFn};

use crate::args::Args;
use crate::diagnostics::Diagnostics;
use options::HandlerOptions;
use subject::{Capture, HandlerSubject};

/// A handler attribute's options as a typed model (`#[nats_subscribe]`,
/// `#[jetstream_consumer]`): built by [`parse`](Self::parse), checked by
/// [`check`](Self::check), turned into the runtime's `Endpoint` by
/// [`endpoint`](Self::endpoint).
pub(crate) trait HandlerAttribute: Sized {
    /// The attribute's name, for messages.
    const NAME: &'static str;
    /// Every option it takes, for "unknown option" errors.
    const OPTIONS: &'static [&'static str];

    /// Parse: the arguments into the model. A value of the wrong shape (or a
    /// missing required option) is reported, and the option left out.
    fn parse(args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Self;

    /// Check: the rules on the model, every error reported.
    fn check(&self, diagnostics: &mut Diagnostics);

    /// The options every handler attribute takes.
    fn options(&self) -> &HandlerOptions;

    /// The subjects written in the attribute (checked against `message`).
    fn subjects(&self) -> &[HandlerSubject];

    /// The captures passed to arguments of their name.
    fn captures(&self) -> &[Capture];

    /// Expand: the `Endpoint` expression for the handler `name`, or `None`
    /// when a required option is missing.
    fn endpoint(&self, name: &Ident) -> Option<TokenStream>;

    /// Compile-time checks only the compiler can make (`const _` items over
    /// constants of the user's types), beside the handler.
    fn checks(&self) -> TokenStream {
        TokenStream::new()
    }

    /// Whether the handler takes batches: its arguments must read a batch.
    fn batched(&self) -> bool {
        false
    }
}

/// Runs the pipeline for attribute `A` on `item`. Every error is reported; when
/// the expansion is impossible the user's item is emitted unchanged, so the IDE
/// and the rest of the crate keep seeing it.
pub(crate) fn expand_attribute<A: HandlerAttribute>(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(e) => {
            // Not a function (or a body that does not parse yet): keep the tokens.
            let message = format!("`#[{}]` goes on an `async fn`", A::NAME);
            let error = syn::Error::new(e.span(), message).to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut diagnostics = Diagnostics::default();
    item::check_signature(&item_fn, A::NAME, &mut diagnostics);
    let model = match Args::parse(args, A::OPTIONS) {
        Ok(args) => Some(A::parse(args, &item_fn, &mut diagnostics)),
        Err(e) => {
            diagnostics.push(e);
            None
        }
    };
    if let Some(model) = &model {
        model.check(&mut diagnostics);
        item::check_arguments(&item_fn, model.captures(), &mut diagnostics);
    }
    let expanded = model
        .as_ref()
        .filter(|_| item::is_expandable(&item_fn))
        .and_then(|model| Some(expand::handler(&item_fn, model, model.endpoint(&item_fn.sig.ident)?)));
    let errors = diagnostics.to_compile_errors();
    match expanded {
        Some(expanded) => quote!(#expanded #errors),
        None => quote!(#item_fn #errors),
    }
}
