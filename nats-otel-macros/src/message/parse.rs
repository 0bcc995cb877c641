//! Parse: the `#[nats(...)]` attributes of a derive input into the
//! [`MessageType`] model. Every malformed option is reported, not only the first.

use syn::{Data, DeriveInput, Fields, LitStr};

use crate::diagnostics::{Diagnostics, subspan, with_help};
use crate::message::model::{Codec, Kind, MessageType, Template, TemplateSegment};

impl<'a> MessageType<'a> {
    pub(crate) fn parse(input: &'a DeriveInput, kind: Kind, diagnostics: &mut Diagnostics) -> Self {
        let mut model = MessageType {
            kind,
            input,
            subject: None,
            stream: None,
            reply: None,
            codec: Codec::Json,
            krate: syn::parse_quote!(::nats_otel_runtime),
        };
        let mut subject: Option<LitStr> = None;
        let mut seen: Vec<String> = Vec::new();
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("nats")) {
            let parsed = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                if let Some(error) = kind.unknown_option(&key) {
                    diagnostics.push(syn::Error::new_spanned(&meta.path, error));
                    // Skip the value, to read the options after it.
                    return meta.value()?.parse::<syn::Expr>().map(drop);
                }
                if seen.contains(&key) {
                    diagnostics.push(syn::Error::new_spanned(
                        &meta.path,
                        with_help(format!("`{key}` is given more than once"), "remove one"),
                    ));
                    return meta.value()?.parse::<syn::Expr>().map(drop);
                }
                seen.push(key.clone());
                match key.as_str() {
                    "subject" => subject = Some(meta.value()?.parse()?),
                    "stream" => model.stream = Some(meta.value()?.parse()?),
                    "reply" => model.reply = Some(meta.value()?.parse()?),
                    "crate" => {
                        let lit: LitStr = meta.value()?.parse()?;
                        model.krate = lit.parse()?;
                    }
                    _ => {
                        let value = meta.value()?;
                        if value.peek(LitStr) {
                            let lit: LitStr = value.parse()?;
                            match lit.value().as_str() {
                                "json" => model.codec = Codec::Json,
                                "raw" => model.codec = Codec::Raw { span: lit.span(), field: newtype_field(input) },
                                other => diagnostics.error_with_help(
                                    lit.span(),
                                    format!("unknown codec `{other}`"),
                                    "use `\"json\"` (default), `\"raw\"`, or a type implementing `Codec`: `codec = MyCodec`",
                                ),
                            }
                        } else {
                            model.codec = Codec::Custom(value.parse()?);
                        }
                    }
                }
                Ok(())
            });
            if let Err(e) = parsed {
                diagnostics.push(e);
            }
        }
        model.subject = match (kind, subject) {
            (Kind::Message, None) => {
                diagnostics.error_with_help(
                    input.ident.span(),
                    "`#[derive(NatsMessage)]` needs a subject template",
                    "add `#[nats(subject = \"orders.{region}.created\")]`, or derive `NatsPayload` for a payload without a subject (a reply, say)",
                );
                None
            }
            (_, subject) => subject.and_then(|lit| Template::parse(lit, diagnostics)),
        };
        model
    }
}

impl Kind {
    /// The error for `key` when this derive does not take it.
    fn unknown_option(self, key: &str) -> Option<String> {
        let (valid, listed) = match self {
            Kind::Message => (
                &["subject", "stream", "reply", "codec", "crate"][..],
                "`subject`, `stream`, `reply`, `codec`, `crate`",
            ),
            Kind::Payload => (&["codec", "crate"][..], "`codec`, `crate`"),
        };
        if valid.contains(&key) {
            return None;
        }
        let help = if self == Kind::Payload && ["subject", "stream", "reply"].contains(&key) {
            format!("a payload has no subject; derive `NatsMessage` for `{key}`")
        } else {
            format!("expected one of: {listed}")
        };
        Some(with_help(format!("unknown option `{key}`"), help))
    }
}

impl Template {
    /// Parses `lit` as a message subject (literal tokens and `{field}`
    /// captures, no wildcards) with the shared grammar.
    fn parse(lit: LitStr, diagnostics: &mut Diagnostics) -> Option<Self> {
        let text = lit.value();
        let parsed = match nats_otel_rules::Subject::parse(&text, nats_otel_rules::Usage::PublishTemplate) {
            Ok(parsed) => parsed,
            Err(e) => {
                diagnostics.error_with_help(subspan(&lit, e.range.clone()), e.message(), e.help());
                return None;
            }
        };
        let segments = parsed
            .segments()
            .iter()
            .map(|segment| match segment.token {
                nats_otel_rules::Token::Capture(field) => TemplateSegment::Capture {
                    field: field.to_owned(),
                    span: subspan(&lit, segment.range.clone()),
                },
                _ => TemplateSegment::Literal(text[segment.range.clone()].to_owned()),
            })
            .collect();
        Some(Template { pattern: parsed.pattern(), segments, lit })
    }
}

/// The field type of a newtype (`struct Image(Bytes);`).
fn newtype_field(input: &DeriveInput) -> Option<syn::Type> {
    match &input.data {
        Data::Struct(s) if matches!(&s.fields, Fields::Unnamed(f) if f.unnamed.len() == 1) => {
            s.fields.iter().next().map(|f| f.ty.clone())
        }
        _ => None,
    }
}
