//! The parse and check steps of `#[jetstream_consumer]` on `parse_quote!` input,
//! and the expansion of a small model.

#![allow(clippy::panic)]

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr, parse_quote};

use super::model::{AckMode, Consumer, DeadLetterRoute, Deliver, SettleRecord, StreamRef};
use crate::args::Args;
use crate::diagnostics::Diagnostics;
use crate::handler::HandlerAttribute;
use crate::handler::options::TraceMode;

fn handler() -> ItemFn {
    parse_quote!(
        async fn bill() {}
    )
}

/// The model and the first line of each parse error.
fn parse(args: TokenStream) -> (Consumer, Vec<String>) {
    let mut diagnostics = Diagnostics::default();
    let args = Args::parse(args, Consumer::OPTIONS).unwrap_or_else(|e| panic!("{e}"));
    let consumer = Consumer::parse(args, &handler(), &mut diagnostics);
    (consumer, first_lines(&diagnostics))
}

/// The first line of each check error, for a model that parsed cleanly.
fn check(args: TokenStream) -> Vec<String> {
    let (consumer, parse_errors) = parse(args);
    assert!(parse_errors.is_empty(), "{parse_errors:?}");
    let mut diagnostics = Diagnostics::default();
    consumer.check(&mut diagnostics);
    first_lines(&diagnostics)
}

fn first_lines(diagnostics: &Diagnostics) -> Vec<String> {
    diagnostics.messages().iter().filter_map(|m| m.lines().next().map(str::to_owned)).collect()
}

#[test]
fn parses_every_option_into_typed_values() {
    let (consumer, errors) = parse(quote!(
        stream = "ORDERS",
        durable = "billing",
        filter = "orders.{region}.created",
        deliver = "new",
        ack_wait = "30s",
        max_deliver = 5,
        backoff = ["250ms", "10s", "1m"],
        max_ack_pending = 64,
        concurrency = 16,
        batch = 32,
        ack = "confirmed",
        create = false,
        dead_letter = "orders.dead",
        dead_letter_route = "core",
        trace = "link",
        settle = "event",
        capture_headers = ["x-tenant"],
        capture_body = 256,
        crate = "::my::runtime"
    ));
    assert!(errors.is_empty(), "{errors:?}");
    let stream = match &consumer.stream {
        Some(StreamRef::Name(name)) => Some(name.value()),
        _ => None,
    };
    assert_eq!(stream.as_deref(), Some("ORDERS"));
    assert_eq!(consumer.durable.as_ref().map(LitStr::value).as_deref(), Some("billing"));
    assert_eq!(consumer.filters.len(), 1);
    assert_eq!(consumer.filters[0].pattern, "orders.*.created");
    assert_eq!(consumer.captures().len(), 1);
    assert_eq!(consumer.deliver.map(|d| d.value), Some(Deliver::New));
    assert_eq!(consumer.ack_wait.map(|d| d.value.as_nanos()), Some(30_000_000_000));
    assert_eq!(consumer.max_deliver.map(|n| n.value), Some(5));
    let backoff: Option<Vec<u64>> =
        consumer.backoff.as_ref().map(|b| b.delays.iter().map(|d| d.value.as_nanos()).collect());
    assert_eq!(backoff, Some(vec![250_000_000, 10_000_000_000, 60_000_000_000]));
    assert_eq!(consumer.max_ack_pending.map(|n| n.value), Some(64));
    assert_eq!(consumer.concurrency.map(|n| n.value), Some(16));
    assert_eq!(consumer.batch.map(|n| n.value), Some(32));
    assert_eq!(consumer.ack.map(|a| a.value), Some(AckMode::Confirmed));
    assert_eq!(consumer.create.map(|c| c.value), Some(false));
    assert_eq!(consumer.dead_letter.as_ref().map(LitStr::value).as_deref(), Some("orders.dead"));
    assert_eq!(consumer.dead_letter_route.map(|r| r.value), Some(DeadLetterRoute::Core));
    assert_eq!(consumer.settle.map(|s| s.value), Some(SettleRecord::Event));
    assert_eq!(consumer.options.trace.map(|t| t.value), Some(TraceMode::Link));
    assert_eq!(consumer.options.span_capture.body.map(|b| b.value), Some(256));
    let krate = &consumer.options.krate;
    assert_eq!(quote!(#krate).to_string(), quote!(::my::runtime).to_string());
}

#[test]
fn options_left_out_stay_none() {
    let (consumer, errors) = parse(quote!(stream = "ORDERS", durable = "billing"));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(consumer.filters.is_empty() && consumer.deliver.is_none() && consumer.backoff.is_none());
    assert!(consumer.options.message.is_none() && consumer.options.trace.is_none());
    let krate = &consumer.options.krate;
    assert_eq!(quote!(#krate).to_string(), quote!(::nats_otel_runtime).to_string());
}

#[test]
fn parse_reports_every_malformed_value_and_leaves_it_out() {
    let (consumer, errors) = parse(quote!(
        "ORDERS",
        stream = "ORDERS",
        durable = "billing",
        deliver = "latest",
        ack_wait = "30 seconds",
        max_deliver = "5",
        backoff = ["1s", "2x"],
        ack = "eventually",
        create = "yes",
        settle = 1,
        trace = "child",
        max_redeliver = 3,
        durable = "again"
    ));
    assert_eq!(
        errors,
        [
            "unexpected string",
            "`durable` is given more than once",
            "unknown `deliver` value `latest`",
            "invalid duration `30 seconds`: unknown unit ` seconds`",
            "`max_deliver` takes an integer literal",
            "invalid duration `2x`: unknown unit `x`",
            "unknown `ack` value `eventually`",
            "`create` takes `true` or `false`",
            "`settle` takes a string literal",
            "unknown trace mode `child`",
            "unknown option `max_redeliver`",
        ]
    );
    assert!(consumer.deliver.is_none() && consumer.ack_wait.is_none() && consumer.max_deliver.is_none());
    assert!(consumer.backoff.is_none() && consumer.ack.is_none() && consumer.create.is_none());
    assert!(consumer.settle.is_none() && consumer.options.trace.is_none());
    assert!(consumer.stream.is_some() && consumer.durable.is_some());
}

#[test]
fn missing_stream_and_durable_are_reported_and_nothing_is_expanded() {
    let (consumer, errors) = parse(quote!(max_deliver = 3));
    assert_eq!(errors, ["`#[jetstream_consumer]` needs `stream`", "`#[jetstream_consumer]` needs `durable`"]);
    assert!(consumer.endpoint(&handler().sig.ident).is_none());
}

#[test]
fn numbers_out_of_the_runtime_type_are_parse_errors() {
    // `max_deliver` is an `i64` at run time: this used to wrap around to -1 (unlimited).
    let (consumer, errors) = parse(quote!(stream = "S", durable = "D", max_deliver = 18446744073709551615));
    assert_eq!(errors, ["`max_deliver = 18446744073709551615` does not fit in `i64`"]);
    assert!(consumer.max_deliver.is_none());
}

#[test]
fn a_valid_model_passes_every_check() {
    let errors = check(quote!(
        stream = "ORDERS",
        durable = "billing",
        filter = ["orders.*.created", "orders.*.updated"],
        max_deliver = 4,
        backoff = ["1s", "2s", "3s"],
        max_ack_pending = 16,
        concurrency = 16,
        batch = 1,
        dead_letter = "orders.dead",
        capture_headers = ["x-a", "x-b"],
        capture_body = 65536
    ));
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn check_reports_every_broken_rule() {
    let errors = check(quote!(
        stream = "ORDERS.v2",
        durable = "bill ing",
        filter = ["a.{x}", "b.*"],
        dead_letter = "dead.*",
        max_deliver = 2,
        backoff = ["1s", "5s"],
        max_ack_pending = 10,
        concurrency = 20,
        batch = 0,
        capture_headers = ["x-tenant", "X-Tenant"],
        capture_body = 0
    ));
    assert_eq!(
        errors,
        [
            "stream: stream or consumer name must not contain `.`",
            "durable: stream or consumer name must not contain whitespace",
            "wildcard `*` is not allowed in a publish subject",
            "captures need a single `filter`",
            "`batch` must be at least 1",
            "2 backoff delays need `max_deliver` above 2, but it is 2",
            "`concurrency = 20` exceeds `max_ack_pending = 10`",
            "header `X-Tenant` is listed twice",
            "`capture_body = 0` records nothing",
        ]
    );
}

#[test]
fn zero_counts_say_how_to_fix_each() {
    let (consumer, _) = parse(quote!(
        stream = "S",
        durable = "D",
        max_deliver = 0,
        max_ack_pending = 0,
        concurrency = 0,
        batch = 0
    ));
    let mut diagnostics = Diagnostics::default();
    consumer.check(&mut diagnostics);
    let messages = diagnostics.messages();
    assert_eq!(messages.len(), 4, "a zero `max_deliver` or `max_ack_pending` means no limit to compare with");
    assert!(messages[0].starts_with("`max_deliver` must be at least 1"));
    assert!(
        messages[0].ends_with("use `1` to deliver each message once; leave `max_deliver` out for no limit")
    );
    assert!(messages[1].ends_with("leave `max_ack_pending` out for the server's default (1000)"));
    assert!(messages[2].ends_with("use `1` to handle messages one at a time, in order"));
    assert!(messages[3].ends_with("use `1` to pull one message at a time"));
}

#[test]
fn captures_come_only_from_a_single_filter() {
    let (one, _) = parse(quote!(stream = "S", durable = "D", filter = "orders.{region}.created"));
    assert_eq!(one.captures().len(), 1);
    let (several, _) = parse(quote!(stream = "S", durable = "D", filter = ["a.{x}", "b.{y}"]));
    assert!(several.captures().is_empty());
    assert_eq!(several.subjects().len(), 2);
}

#[test]
fn expands_to_the_runtime_builder_chain() {
    let (consumer, _) = parse(quote!(
        stream = "S",
        durable = "D",
        filter = "a.{x}",
        deliver = "all",
        ack_wait = "1s",
        max_deliver = 3,
        backoff = ["1ms"],
        concurrency = 2,
        ack = "fire",
        dead_letter_route = "stream",
        settle = "span",
        trace = "parent",
        capture_body = 8
    ));
    let endpoint = consumer.endpoint(&handler().sig.ident).map(|t| t.to_string());
    let private = quote!(::nats_otel_runtime::__private);
    let expected = quote! {
        #private::Endpoint::Consume(
            #private::JetStreamConsumer::new("S", "D")
                .filter("a.*") .template("a.{x}") .deliver(#private::Deliver::All)
                .ack_wait(#private::Duration::from_nanos(1000000000u64)) .max_deliver(3i64)
                .backoff([#private::Duration::from_nanos(1000000u64)]) .concurrency(2usize)
                .trace(#private::TraceMode::Parent) .capture_body(8usize)
                .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(bill)))
        )
    };
    assert_eq!(endpoint, Some(expected.to_string()));
}

#[test]
fn an_ordered_consumer_needs_no_durable_and_expands_to_the_ordered_builder() {
    let (consumer, errors) = parse(quote!(stream = "S", ordered = true, filter = "a.>", deliver = "new"));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(check(quote!(stream = "S", ordered = true, filter = "a.>")).is_empty());
    let endpoint = consumer.endpoint(&handler().sig.ident).map(|t| t.to_string());
    let private = quote!(::nats_otel_runtime::__private);
    let expected = quote! {
        #private::Endpoint::Consume(
            #private::JetStreamConsumer::ordered("S")
                .filter("a.>") .deliver(#private::Deliver::New)
                .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(bill)))
        )
    };
    assert_eq!(endpoint, Some(expected.to_string()));
    let (durable, _) = parse(quote!(stream = "S", ordered = false));
    assert!(durable.endpoint(&handler().sig.ident).is_none(), "`ordered = false` still needs a durable");
}

#[test]
fn options_about_acks_are_errors_on_an_ordered_consumer() {
    let errors = check(quote!(
        stream = "S",
        ordered = true,
        durable = "D",
        ack_wait = "1s",
        max_deliver = 3,
        backoff = ["1s"],
        max_ack_pending = 4,
        concurrency = 2,
        ack = "confirmed",
        create = false,
        dead_letter = "dead",
        dead_letter_route = "core",
        settle = "event"
    ));
    let options = [
        "durable",
        "ack_wait",
        "max_deliver",
        "backoff",
        "max_ack_pending",
        "concurrency",
        "ack",
        "create",
        "dead_letter",
        "dead_letter_route",
        "settle",
    ];
    for option in options {
        let expected = format!("`{option}` does not apply to an ordered consumer");
        assert!(errors.contains(&expected), "{expected} in {errors:?}");
    }
}

#[test]
fn a_stream_type_names_the_stream_and_checks_each_filter_at_compile_time() {
    let (consumer, errors) = parse(quote!(stream = Orders, durable = "billing", filter = "orders.*.placed"));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(matches!(consumer.stream, Some(StreamRef::Declared(_))));
    let endpoint = consumer.endpoint(&handler().sig.ident).map(|t| t.to_string()).unwrap_or_default();
    assert!(
        endpoint.contains("< Orders as :: nats_otel_runtime :: __private :: NatsStream > :: NAME"),
        "{endpoint}"
    );
    assert!(
        endpoint.contains(
            ". declared_stream (< Orders as :: nats_otel_runtime :: __private :: NatsStream > :: config ())"
        ),
        "{endpoint}"
    );
    let checks = consumer.checks().to_string();
    assert!(checks.contains("assert_in_stream"), "{checks}");
    assert!(checks.contains("\"orders.*.placed\""), "{checks}");
    let (named, _) = parse(quote!(stream = "ORDERS", durable = "billing", filter = "x.>"));
    assert!(named.checks().is_empty(), "a stream by name has nothing for the compiler to check");
}
