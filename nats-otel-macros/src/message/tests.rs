//! The parse and check steps of the message derives on `parse_quote!` input.

#![allow(clippy::panic)]

use syn::{DeriveInput, LitStr, parse_quote};

use super::model::{Codec, Kind, MessageType, TemplateSegment};
use crate::diagnostics::Diagnostics;

/// The first line of each parse error, then of each check error.
fn errors(input: &DeriveInput, kind: Kind) -> (Vec<String>, Vec<String>) {
    let mut parse_errors = Diagnostics::default();
    let model = MessageType::parse(input, kind, &mut parse_errors);
    let mut check_errors = Diagnostics::default();
    model.check(&mut check_errors);
    (first_lines(&parse_errors), first_lines(&check_errors))
}

fn first_lines(diagnostics: &Diagnostics) -> Vec<String> {
    diagnostics.messages().iter().filter_map(|m| m.lines().next().map(str::to_owned)).collect()
}

#[test]
fn parses_the_options_and_the_template() {
    let input: DeriveInput = parse_quote! {
        #[derive(NatsMessage)]
        #[nats(subject = "orders.{region}.created", stream = "ORDERS", reply = Receipt, crate = "rt")]
        struct OrderCreated { region: String }
    };
    let mut diagnostics = Diagnostics::default();
    let model = MessageType::parse(&input, Kind::Message, &mut diagnostics);
    assert!(diagnostics.messages().is_empty(), "{:?}", diagnostics.messages());
    let template = model.subject.as_ref().map(|t| (t.lit.value(), t.pattern.clone()));
    assert_eq!(template, Some(("orders.{region}.created".to_owned(), "orders.*.created".to_owned())));
    let segments: Vec<String> = model
        .subject
        .iter()
        .flat_map(|t| &t.segments)
        .map(|s| match s {
            TemplateSegment::Literal(text) => text.clone(),
            TemplateSegment::Capture { field, .. } => format!("<{field}>"),
        })
        .collect();
    assert_eq!(segments, ["orders", "<region>", "created"]);
    assert_eq!(model.stream.as_ref().map(LitStr::value).as_deref(), Some("ORDERS"));
    assert!(model.reply.is_some() && matches!(model.codec, Codec::Json));
    assert!(model.captures_fit_fields());
}

#[test]
fn codecs() {
    let raw: DeriveInput = parse_quote! { #[nats(codec = "raw")] struct Image(Bytes); };
    let model = MessageType::parse(&raw, Kind::Payload, &mut Diagnostics::default());
    assert!(matches!(model.codec, Codec::Raw { field: Some(_), .. }));
    let custom: DeriveInput = parse_quote! { #[nats(codec = my::Cbor)] struct Quote { cents: u64 } };
    let model = MessageType::parse(&custom, Kind::Payload, &mut Diagnostics::default());
    assert!(matches!(model.codec, Codec::Custom(_)));
}

#[test]
fn parse_reports_every_bad_option() {
    let input: DeriveInput = parse_quote! {
        #[nats(stram = "ORDERS", codec = "msgpack", subject = "a.*", subject = "b")]
        struct OrderCreated { region: String }
    };
    let (parse_errors, check_errors) = errors(&input, Kind::Message);
    assert_eq!(
        parse_errors,
        [
            "unknown option `stram`",
            "unknown codec `msgpack`",
            "`subject` is given more than once",
            "wildcard `*` is not allowed in a message subject",
        ]
    );
    assert!(check_errors.is_empty());
}

#[test]
fn a_payload_has_no_subject_and_a_message_needs_one() {
    let payload: DeriveInput = parse_quote! { #[nats(subject = "x")] struct Quote { cents: u64 } };
    let (parse_errors, _) = errors(&payload, Kind::Payload);
    assert_eq!(parse_errors, ["unknown option `subject`"]);
    let message: DeriveInput = parse_quote! { struct OrderCreated { id: u64 } };
    let (parse_errors, _) = errors(&message, Kind::Message);
    assert_eq!(parse_errors, ["`#[derive(NatsMessage)]` needs a subject template"]);
}

#[test]
fn check_reports_the_stream_the_fields_and_the_raw_codec() {
    let input: DeriveInput = parse_quote! {
        #[nats(subject = "images.{size}", stream = "IMAGES.v2", codec = "raw")]
        struct Image(Vec<u8>, u32);
    };
    let (parse_errors, check_errors) = errors(&input, Kind::Message);
    assert!(parse_errors.is_empty(), "{parse_errors:?}");
    assert_eq!(
        check_errors,
        [
            "stream: stream or consumer name must not contain `.`",
            "subject captures need a struct with named fields",
            "`codec = \"raw\"` needs a newtype over bytes",
        ]
    );
}
