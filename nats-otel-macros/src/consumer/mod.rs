//! `#[jetstream_consumer]`: a durable JetStream pull consumer handler.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr};

use crate::args::{
    Args, crate_path, lit_bool, lit_choice, lit_positive, lit_str, lit_str_list, trace_mode, type_path,
};
use crate::diagnostics::{Diagnostics, subspan, with_help};
use crate::duration;
use crate::handler_fn::{self, Built};
use crate::handler_subject::HandlerSubject;

const OPTIONS: &[&str] = &[
    "stream",
    "durable",
    "filter",
    "message",
    "deliver",
    "ack_wait",
    "max_deliver",
    "backoff",
    "max_ack_pending",
    "concurrency",
    "batch",
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

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    handler_fn::expand_attribute("jetstream_consumer", OPTIONS, args, item, endpoint)
}

fn endpoint(mut args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Option<Built> {
    for extra in std::mem::take(&mut args.positional) {
        diagnostics.error(
            extra.span(),
            with_help("unexpected string", "options are `key = value`, e.g. `stream = \"ORDERS\"`"),
        );
    }
    let stream = required_name(&mut args, "stream", "ORDERS", item, diagnostics);
    let durable = required_name(&mut args, "durable", "billing", item, diagnostics);
    let filters = args.take("filter", diagnostics).and_then(|(k, v)| lit_str_list(&k, &v, diagnostics));
    let message = args.take("message", diagnostics).and_then(|(k, v)| type_path(&k, &v, diagnostics));
    let filters: Vec<HandlerSubject> = filters
        .unwrap_or_default()
        .iter()
        .filter_map(|lit| HandlerSubject::parse(lit, diagnostics))
        .collect();
    if filters.len() > 1 {
        for capture in filters.iter().flat_map(|f| &f.captures) {
            diagnostics.error(
                capture.span,
                with_help(
                    "captures need a single `filter`",
                    "use one filter with captures, or `*` in each of several filters",
                ),
            );
        }
    }
    let deliver = args
        .take("deliver", diagnostics)
        .and_then(|(k, v)| lit_choice(&k, &v, &["all", "new", "last", "last_per_subject"], diagnostics));
    let ack_wait = args.take("ack_wait", diagnostics).and_then(|(k, v)| {
        let lit = lit_str(&k, &v, diagnostics)?;
        parse_duration(&lit, diagnostics)
    });
    let max_deliver =
        args.take("max_deliver", diagnostics).and_then(|(k, v)| lit_positive(&k, &v, diagnostics));
    let backoff = args.take("backoff", diagnostics).and_then(|(k, v)| {
        let lits = lit_str_list(&k, &v, diagnostics)?;
        let parsed: Vec<Option<u64>> = lits.iter().map(|lit| parse_duration(lit, diagnostics)).collect();
        Some((k, parsed.into_iter().collect::<Option<Vec<u64>>>()?))
    });
    let max_ack_pending =
        args.take("max_ack_pending", diagnostics).and_then(|(k, v)| lit_positive(&k, &v, diagnostics));
    let concurrency =
        args.take("concurrency", diagnostics).and_then(|(k, v)| lit_positive(&k, &v, diagnostics));
    let batch = args.take("batch", diagnostics).and_then(|(k, v)| lit_positive(&k, &v, diagnostics));
    let ack = args
        .take("ack", diagnostics)
        .and_then(|(k, v)| lit_choice(&k, &v, &["fire", "confirmed"], diagnostics));
    let create = args.take("create", diagnostics).and_then(|(k, v)| lit_bool(&k, &v, diagnostics));
    let dead_letter = args.take("dead_letter", diagnostics).and_then(|(k, v)| lit_str(&k, &v, diagnostics));
    if let Some(lit) = &dead_letter
        && let Err(e) = nats_otel_rules::Subject::parse(&lit.value(), nats_otel_rules::Usage::Publish)
    {
        diagnostics.error(subspan(lit, e.range.clone()), with_help(e.message(), e.help()));
    }
    let dead_letter_route = args
        .take("dead_letter_route", diagnostics)
        .and_then(|(k, v)| lit_choice(&k, &v, &["stream", "core"], diagnostics));
    let settle = args
        .take("settle", diagnostics)
        .and_then(|(k, v)| lit_choice(&k, &v, &["span", "event"], diagnostics));
    let trace = trace_mode(&mut args, diagnostics);
    let capture = crate::capture::options(&mut args, diagnostics);
    let krate = crate_path(&mut args, diagnostics);
    args.finish(diagnostics);

    // Rules across options, as nats-server applies them, but at compile time.
    if let (Some((key, backoff)), Some((max, max_span))) = (&backoff, &max_deliver)
        && backoff.len() as u64 >= *max
    {
        diagnostics.push(syn::Error::new(
            key.span(),
            with_help(
                format!(
                    "{} backoff delays need `max_deliver` above {}, but it is {max}",
                    backoff.len(),
                    backoff.len()
                ),
                format!("raise `max_deliver` to at least {} or shorten `backoff`", backoff.len() + 1),
            ),
        ));
        let _ = max_span;
    }
    if let (Some((limit, span)), Some((max, _))) = (&concurrency, &max_ack_pending)
        && limit > max
    {
        diagnostics.error(
            *span,
            with_help(
                format!("`concurrency = {limit}` exceeds `max_ack_pending = {max}`"),
                "handlers beyond `max_ack_pending` would wait for messages the server will not send; lower `concurrency`",
            ),
        );
    }

    let (stream, durable) = (stream?, durable?);
    let name = &item.sig.ident;
    let private = quote!(#krate::__private);
    let checks: TokenStream = match &message {
        Some(message) => filters.iter().map(|f| f.covered_by(message, &krate)).collect(),
        None => TokenStream::new(),
    };
    let message_filter = match &message {
        Some(ty) if filters.is_empty() => quote! {
            .filter(<#ty as #private::NatsMessage>::PATTERN)
            .template(<#ty as #private::NatsMessage>::TEMPLATE)
        },
        _ => TokenStream::new(),
    };
    let filter_calls: Vec<TokenStream> = filters
        .iter()
        .map(|f| {
            let pattern = &f.pattern;
            quote!(.filter(#pattern))
        })
        .collect();
    let template = match filters.as_slice() {
        [only] => only.template_call(),
        _ => TokenStream::new(),
    };
    let captures = match filters.len() {
        1 => filters.into_iter().flat_map(|f| f.captures).collect(),
        _ => Vec::new(),
    };

    let deliver = deliver.map(|(d, _)| {
        let variant = match d.as_str() {
            "new" => quote!(New),
            "last" => quote!(Last),
            "last_per_subject" => quote!(LastPerSubject),
            _ => quote!(All),
        };
        quote!(.deliver(#private::Deliver::#variant))
    });
    let ack_wait = ack_wait.map(|n| quote!(.ack_wait(#private::Duration::from_nanos(#n))));
    let max_deliver = max_deliver.map(|(n, _)| {
        let n = n as i64;
        quote!(.max_deliver(#n))
    });
    let backoff = backoff.map(|(_, delays)| quote!(.backoff([#(#private::Duration::from_nanos(#delays)),*])));
    let max_ack_pending = max_ack_pending.map(|(n, _)| {
        let n = n as i64;
        quote!(.max_ack_pending(#n))
    });
    let concurrency = concurrency.map(|(n, _)| {
        let n = n as usize;
        quote!(.concurrency(#n))
    });
    let batch = batch.map(|(n, _)| {
        let n = n as usize;
        quote!(.batch(#n))
    });
    let ack = ack.filter(|(a, _)| a == "confirmed").map(|_| quote!(.ack(#private::AckMode::Confirmed)));
    let create = create.map(|c| quote!(.create(#c)));
    let dead_letter = dead_letter.map(|d| quote!(.dead_letter(#d)));
    let dead_letter_route = dead_letter_route
        .filter(|(r, _)| r == "core")
        .map(|_| quote!(.dead_letter_route(#private::DeadLetterRoute::Core)));
    let settle =
        settle.filter(|(s, _)| s == "event").map(|_| quote!(.settle_record(#private::SettleRecord::Event)));
    let trace = trace.map(|m| quote!(.trace(#private::TraceMode::#m)));
    let endpoint = quote! {
        #private::Endpoint::Consume(
            #private::JetStreamConsumer::new(#stream, #durable)
                #(#filter_calls)* #message_filter #template #deliver #ack_wait #max_deliver #backoff #max_ack_pending #concurrency
                #batch #ack #create #dead_letter #dead_letter_route #settle #trace #capture
                .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
        )
    };
    Some(Built { krate, endpoint, captures, checks, message })
}

fn required_name(
    args: &mut Args,
    key: &'static str,
    example: &str,
    item: &ItemFn,
    diagnostics: &mut Diagnostics,
) -> Option<LitStr> {
    let Some((k, v)) = args.take(key, diagnostics) else {
        diagnostics.error(
            item.sig.ident.span(),
            with_help(
                format!("`#[jetstream_consumer]` needs `{key}`"),
                format!("add `{key} = \"{example}\"`"),
            ),
        );
        return None;
    };
    let lit = lit_str(&k, &v, diagnostics)?;
    if let Err(e) = nats_otel_rules::validate_name(&lit.value()) {
        diagnostics
            .error(subspan(&lit, e.range.clone()), with_help(format!("{key}: {}", e.message()), e.help()));
    }
    Some(lit)
}

fn parse_duration(lit: &LitStr, diagnostics: &mut Diagnostics) -> Option<u64> {
    match duration::parse(&lit.value()) {
        Ok(n) => Some(n),
        Err((message, range)) => {
            diagnostics.error(
                subspan(lit, range),
                with_help(
                    format!("invalid duration `{}`: {message}", lit.value()),
                    "write a number with a unit: `\"250ms\"`, `\"30s\"`, `\"5m\"`, `\"1h30m\"` (units: ns, us, ms, s, m, h)",
                ),
            );
            None
        }
    }
}
