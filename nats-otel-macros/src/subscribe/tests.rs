//! The parse and check steps of `#[nats_subscribe]` on `parse_quote!` input,
//! and the expansion of a small model.

#![allow(clippy::panic)]

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr, parse_quote};

use super::model::Subscribe;
use crate::args::Args;
use crate::diagnostics::Diagnostics;
use crate::handler::HandlerAttribute;
use crate::handler::options::TraceMode;

fn handler() -> ItemFn {
    parse_quote!(
        async fn quote() {}
    )
}

/// The model and the first line of each parse error, then of each check error.
fn parse_and_check(args: TokenStream) -> (Subscribe, Vec<String>, Vec<String>) {
    let mut parse_errors = Diagnostics::default();
    let args = Args::parse(args, Subscribe::OPTIONS).unwrap_or_else(|e| panic!("{e}"));
    let subscribe = Subscribe::parse(args, &handler(), &mut parse_errors);
    let mut check_errors = Diagnostics::default();
    subscribe.check(&mut check_errors);
    (subscribe, first_lines(&parse_errors), first_lines(&check_errors))
}

fn first_lines(diagnostics: &Diagnostics) -> Vec<String> {
    diagnostics.messages().iter().filter_map(|m| m.lines().next().map(str::to_owned)).collect()
}

#[test]
fn parses_every_option_into_typed_values() {
    let (subscribe, parse_errors, check_errors) = parse_and_check(quote!(
        "orders.{region}.created",
        queue = "billing",
        concurrency = 16,
        trace = "parent",
        capture_headers = "x-tenant",
        capture_body = 1024,
        crate = "rt"
    ));
    assert!(parse_errors.is_empty() && check_errors.is_empty(), "{parse_errors:?} {check_errors:?}");
    let subject = subscribe.subject.as_ref().map(|s| (s.pattern.as_str(), s.template.as_deref()));
    assert_eq!(subject, Some(("orders.*.created", Some("orders.{region}.created"))));
    assert_eq!(subscribe.captures().len(), 1);
    assert_eq!(subscribe.queue.as_ref().map(LitStr::value).as_deref(), Some("billing"));
    assert_eq!(subscribe.concurrency.map(|n| n.value), Some(16));
    assert_eq!(subscribe.options.trace.map(|t| t.value), Some(TraceMode::Parent));
    assert_eq!(subscribe.options.span_capture.headers.as_ref().map(Vec::len), Some(1));
    assert_eq!(subscribe.options.span_capture.body.map(|b| b.value), Some(1024));
}

#[test]
fn the_subject_comes_from_the_string_the_key_or_the_message() {
    let (named, errors, _) = parse_and_check(quote!(subject = "orders.>"));
    assert!(errors.is_empty());
    assert_eq!(named.subject.map(|s| s.pattern).as_deref(), Some("orders.>"));

    let (from_message, errors, _) = parse_and_check(quote!(message = OrderCreated));
    assert!(errors.is_empty());
    assert!(from_message.subject.is_none() && from_message.options.message.is_some());
    let endpoint = from_message.endpoint(&handler().sig.ident).map(|t| t.to_string()).unwrap_or_default();
    assert!(
        endpoint.contains("< OrderCreated as :: nats_otel_runtime :: __private :: NatsMessage > :: PATTERN")
    );

    let (both, errors, _) = parse_and_check(quote!("orders.*", subject = "orders.>"));
    assert_eq!(errors, ["the subject is given twice"]);
    assert!(both.subject.is_none());

    let (none, errors, _) = parse_and_check(quote!(queue = "q"));
    assert_eq!(errors, ["`#[nats_subscribe]` needs a subject"]);
    assert!(none.endpoint(&handler().sig.ident).is_none());
}

#[test]
fn subjects_are_parsed_with_the_shared_grammar() {
    let (subscribe, errors, _) = parse_and_check(quote!("orders..created"));
    assert_eq!(errors, ["`..` leaves an empty token: tokens must not be empty"]);
    assert!(subscribe.subject.is_none());
}

#[test]
fn parse_and_check_report_every_error() {
    let (_, parse_errors, check_errors) = parse_and_check(quote!(
        "orders.*",
        "extra",
        queue = "bill ing",
        concurrency = 0,
        trace = "child",
        capture_body = "256",
        capture_headers = ["a:b"],
        que = "x"
    ));
    assert_eq!(
        parse_errors,
        [
            "unexpected string",
            "unknown trace mode `child`",
            "`capture_body` takes the most bytes to record, as an integer literal",
            "unknown option `que`",
        ]
    );
    assert_eq!(
        check_errors,
        [
            "queue group must not contain whitespace",
            "`concurrency` must be at least 1",
            "`a:b` is not a header name: it contains `:`",
        ]
    );
}

#[test]
fn expands_to_the_runtime_builder_chain() {
    let (subscribe, _, _) = parse_and_check(quote!("orders.*", queue = "q", concurrency = 4, trace = "link"));
    let endpoint = subscribe.endpoint(&handler().sig.ident).map(|t| t.to_string());
    let private = quote!(::nats_otel_runtime::__private);
    let expected = quote! {
        #private::Endpoint::Subscribe(
            #private::Subscription::new("orders.*")
                .queue("q") .concurrency(4usize) .trace(#private::TraceMode::Link)
                .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(quote)))
        )
    };
    assert_eq!(endpoint, Some(expected.to_string()));
}
