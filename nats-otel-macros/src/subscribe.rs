//! `#[nats_subscribe]`: a core NATS subscription handler.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr};

use crate::args::{Args, crate_path, lit_positive, lit_str, trace_mode};
use crate::diagnostics::{Diagnostics, subspan, with_help};
use crate::handler_fn;

const OPTIONS: &[&str] = &["subject", "queue", "concurrency", "trace", "crate"];

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut diagnostics = Diagnostics::default();
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(e) => {
            // Not a function (or a body that does not parse yet): keep the tokens
            // so the IDE still sees them, and say what is expected.
            let error =
                syn::Error::new(e.span(), "`#[nats_subscribe]` goes on an `async fn`").to_compile_error();
            return quote!(#item #error);
        }
    };
    handler_fn::check(&item_fn, "nats_subscribe", &mut diagnostics);

    let endpoint = match Args::parse(args, OPTIONS) {
        Ok(args) => endpoint(args, &item_fn, &mut diagnostics),
        Err(e) => {
            diagnostics.push(e);
            None
        }
    };

    match endpoint {
        Some((krate, endpoint)) if item_fn.sig.asyncness.is_some() && item_fn.sig.receiver().is_none() => {
            let expanded = handler_fn::expand(&item_fn, &krate, endpoint);
            let errors = diagnostics.to_compile_errors();
            quote!(#expanded #errors)
        }
        _ => {
            let errors = diagnostics.to_compile_errors();
            quote!(#item_fn #errors)
        }
    }
}

/// The `Endpoint` expression built from the arguments, and the runtime crate path.
fn endpoint(
    mut args: Args,
    item: &ItemFn,
    diagnostics: &mut Diagnostics,
) -> Option<(TokenStream, TokenStream)> {
    let named_subject = args.take("subject", diagnostics).and_then(|(k, v)| lit_str(&k, &v, diagnostics));
    let mut positional = std::mem::take(&mut args.positional).into_iter();
    let subject = match (positional.next(), named_subject) {
        (Some(lit), None) | (None, Some(lit)) => Some(lit),
        (Some(_), Some(named)) => {
            diagnostics.error(
                named.span(),
                with_help(
                    "the subject is given twice",
                    "keep either the leading string or `subject = \"…\"`",
                ),
            );
            None
        }
        (None, None) => {
            diagnostics.error(
                item.sig.ident.span(),
                with_help(
                    "`#[nats_subscribe]` needs a subject",
                    "write `#[nats_subscribe(\"orders.*\")]` or `#[nats_subscribe(subject = \"orders.*\")]`",
                ),
            );
            None
        }
    };
    for extra in positional {
        diagnostics.error(
            extra.span(),
            with_help("unexpected string", "options are `key = value`, e.g. `queue = \"workers\"`"),
        );
    }
    if let Some(lit) = &subject {
        check_subject(lit, diagnostics);
    }

    let queue = args.take("queue", diagnostics).and_then(|(k, v)| lit_str(&k, &v, diagnostics));
    if let Some(lit) = &queue
        && let Err(e) = nats_otel_subject::validate_queue_group(&lit.value())
    {
        diagnostics.error(subspan(lit, e.range.clone()), with_help(e.message(), e.help()));
    }
    let concurrency =
        args.take("concurrency", diagnostics).and_then(|(k, v)| lit_positive(&k, &v, diagnostics));
    let trace_mode = trace_mode(&mut args, diagnostics);
    let krate = crate_path(&mut args, diagnostics);
    args.finish(diagnostics);

    let subject = subject?;
    let name = &item.sig.ident;
    let queue = queue.map(|q| quote!(.queue(#q)));
    let concurrency = concurrency.map(|(n, _)| {
        let n = n as usize;
        quote!(.concurrency(#n))
    });
    let trace = trace_mode.map(|m| quote!(.trace(#krate::__private::TraceMode::#m)));
    let endpoint = quote! {
        #krate::__private::Endpoint::Subscribe(
            #krate::__private::Subscription::new(#subject)
                #queue #concurrency #trace
                .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
        )
    };
    Some((krate, endpoint))
}

fn check_subject(lit: &LitStr, diagnostics: &mut Diagnostics) {
    let value = lit.value();
    if let Err(e) = nats_otel_subject::Subject::parse(&value, nats_otel_subject::Usage::Subscribe) {
        diagnostics.error(subspan(lit, e.range.clone()), with_help(e.message(), e.help()));
    }
}
