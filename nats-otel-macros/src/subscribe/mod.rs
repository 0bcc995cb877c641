//! `#[nats_subscribe]`: a core NATS subscription handler.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::args::{Args, crate_path, lit_positive, lit_str, trace_mode, type_path};
use crate::diagnostics::{Diagnostics, subspan, with_help};
use crate::handler_fn::{self, Built};
use crate::handler_subject::HandlerSubject;

const OPTIONS: &[&str] =
    &["subject", "message", "queue", "concurrency", "trace", "capture_headers", "capture_body", "crate"];

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    handler_fn::expand_attribute("nats_subscribe", OPTIONS, args, item, endpoint)
}

fn endpoint(mut args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Option<Built> {
    let named_subject = args.take("subject", diagnostics).and_then(|(k, v)| lit_str(&k, &v, diagnostics));
    let message = args.take("message", diagnostics).and_then(|(k, v)| type_path(&k, &v, diagnostics));
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
        (None, None) if message.is_some() => None,
        (None, None) => {
            diagnostics.error(
                item.sig.ident.span(),
                with_help(
                    "`#[nats_subscribe]` needs a subject",
                    "write `#[nats_subscribe(\"orders.*\")]`, `#[nats_subscribe(subject = \"orders.*\")]` or `#[nats_subscribe(message = OrderCreated)]`",
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
    let subject = subject.and_then(|lit| HandlerSubject::parse(&lit, diagnostics));

    let queue = args.take("queue", diagnostics).and_then(|(k, v)| lit_str(&k, &v, diagnostics));
    if let Some(lit) = &queue
        && let Err(e) = nats_otel_rules::validate_queue_group(&lit.value())
    {
        diagnostics.error(subspan(lit, e.range.clone()), with_help(e.message(), e.help()));
    }
    let concurrency =
        args.take("concurrency", diagnostics).and_then(|(k, v)| lit_positive(&k, &v, diagnostics));
    let trace_mode = trace_mode(&mut args, diagnostics);
    let capture = crate::capture::options(&mut args, diagnostics);
    let krate = crate_path(&mut args, diagnostics);
    args.finish(diagnostics);

    let checks = match (&subject, &message) {
        (Some(subject), Some(message)) => subject.covered_by(message, &krate),
        _ => TokenStream::new(),
    };
    let (subject, template, captures) = match (subject, &message) {
        (Some(subject), _) => {
            let template = subject.template_call();
            let pattern = subject.pattern;
            (quote!(#pattern), template, subject.captures)
        }
        (None, Some(ty)) => (
            quote!(<#ty as #krate::__private::NatsMessage>::PATTERN),
            quote!(.template(<#ty as #krate::__private::NatsMessage>::TEMPLATE)),
            Vec::new(),
        ),
        (None, None) => return None,
    };
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
                #template #queue #concurrency #trace #capture
                .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
        )
    };
    Some(Built { krate, endpoint, captures, checks, message })
}
