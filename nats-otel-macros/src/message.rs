//! `#[derive(NatsMessage)]` (a type with a subject template, checked at compile
//! time) and `#[derive(NatsPayload)]` (a payload with a codec, e.g. a reply).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::diagnostics::{Diagnostics, subspan, with_help};

/// Which derive is expanding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Payload,
}

/// `#[nats(codec = …)]`.
enum Codec {
    Json,
    Raw(proc_macro2::Span),
    Custom(syn::Path),
}

/// The options of `#[nats(…)]`.
struct Options {
    subject: Option<LitStr>,
    stream: Option<LitStr>,
    reply: Option<syn::Type>,
    codec: Codec,
    krate: TokenStream,
}

fn parse_options(input: &DeriveInput, kind: Kind, diagnostics: &mut Diagnostics) -> Options {
    let valid = match kind {
        Kind::Message => "`subject`, `stream`, `reply`, `codec`, `crate`",
        Kind::Payload => "`codec`, `crate`",
    };
    let mut options = Options {
        subject: None,
        stream: None,
        reply: None,
        codec: Codec::Json,
        krate: quote!(::nats_otel_runtime),
    };
    let mut seen: Vec<String> = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("nats")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            let allowed = match kind {
                Kind::Message => ["subject", "stream", "reply", "codec", "crate"].contains(&key.as_str()),
                Kind::Payload => ["codec", "crate"].contains(&key.as_str()),
            };
            if !allowed {
                let help = if kind == Kind::Payload && ["subject", "stream", "reply"].contains(&key.as_str()) {
                    format!("a payload has no subject; derive `NatsMessage` for `{key}`")
                } else {
                    format!("expected one of: {valid}")
                };
                return Err(meta.error(with_help(format!("unknown option `{key}`"), help)));
            }
            if seen.contains(&key) {
                return Err(meta.error(with_help(format!("`{key}` is given more than once"), "remove one")));
            }
            seen.push(key.clone());
            match key.as_str() {
                "subject" => options.subject = Some(meta.value()?.parse()?),
                "stream" => options.stream = Some(meta.value()?.parse()?),
                "reply" => options.reply = Some(meta.value()?.parse()?),
                "crate" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    let path: syn::Path = lit.parse()?;
                    options.krate = quote!(#path);
                }
                _ => {
                    let value = meta.value()?;
                    if value.peek(LitStr) {
                        let lit: LitStr = value.parse()?;
                        options.codec = match lit.value().as_str() {
                            "json" => Codec::Json,
                            "raw" => Codec::Raw(lit.span()),
                            other => {
                                return Err(syn::Error::new(
                                    lit.span(),
                                    with_help(
                                        format!("unknown codec `{other}`"),
                                        "use `\"json\"` (default), `\"raw\"`, or a type implementing `Codec`: `codec = MyCodec`",
                                    ),
                                ));
                            }
                        };
                    } else {
                        options.codec = Codec::Custom(value.parse()?);
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            diagnostics.push(e);
        }
    }
    options
}

pub(crate) fn derive(input: TokenStream, kind: Kind) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut diagnostics = Diagnostics::default();
    let options = parse_options(&input, kind, &mut diagnostics);
    let payload = payload_impls(&input, &options, &mut diagnostics);
    let message = match kind {
        Kind::Message => message_impl(&input, &options, &mut diagnostics),
        Kind::Payload => TokenStream::new(),
    };
    let errors = diagnostics.to_compile_errors();
    quote!(#errors #payload #message)
}

/// `NatsPayload` with the codec, and the type as a handler argument.
fn payload_impls(input: &DeriveInput, options: &Options, diagnostics: &mut Diagnostics) -> TokenStream {
    let krate = &options.krate;
    let private = quote!(#krate::__private);
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let (encode, decode) = match &options.codec {
        Codec::Json => (
            quote!(<#private::JsonCodec as #private::Codec<Self>>::encode(self)),
            quote!(<#private::JsonCodec as #private::Codec<Self>>::decode(payload)),
        ),
        Codec::Custom(path) => (
            quote_spanned!(path.span()=> <#path as #private::Codec<Self>>::encode(self)),
            quote_spanned!(path.span()=> <#path as #private::Codec<Self>>::decode(payload)),
        ),
        Codec::Raw(span) => match &input.data {
            Data::Struct(s) if matches!(&s.fields, Fields::Unnamed(f) if f.unnamed.len() == 1) => {
                let field = s.fields.iter().next().map(|f| &f.ty);
                (
                    quote_spanned!(*span=> <#private::RawCodec as #private::Codec<#field>>::encode(&self.0)),
                    quote_spanned!(*span=> <#private::RawCodec as #private::Codec<#field>>::decode(payload).map(Self)),
                )
            }
            _ => {
                diagnostics.error(
                    *span,
                    with_help(
                        "`codec = \"raw\"` needs a newtype over bytes",
                        format!("declare `struct {name}(Bytes);` (or `Vec<u8>`)"),
                    ),
                );
                // Still implement the trait, so this is the only error.
                (quote!(::core::unreachable!()), quote!(::core::unreachable!()))
            }
        },
    };
    let mut with_state = input.generics.clone();
    with_state.params.push(syn::parse_quote!(__S));
    let (impl_with_state, _, _) = with_state.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::NatsPayload for #name #ty_generics #where_clause {
            fn encode(&self) -> ::core::result::Result<#krate::Bytes, #krate::message::CodecError> {
                #encode
            }

            fn decode(payload: &#krate::Bytes) -> ::core::result::Result<Self, #krate::message::CodecError> {
                #decode
            }
        }

        #[automatically_derived]
        impl #impl_generics #private::IntoReply for #name #ty_generics #where_clause {
            fn into_reply(self) -> ::core::result::Result<#krate::Reply, #krate::Failure> {
                #private::typed_reply(&self)
            }
        }

        #[automatically_derived]
        impl #impl_generics #private::IntoOutcome for #name #ty_generics #where_clause {
            fn into_outcome(self) -> #private::Outcome {
                match #private::IntoReply::into_reply(self) {
                    ::core::result::Result::Ok(reply) => #private::Outcome::Success(reply),
                    ::core::result::Result::Err(failure) => #private::Outcome::Failure(failure),
                }
            }
        }

        #[automatically_derived]
        impl #impl_generics #private::Extractor for #name #ty_generics #where_clause {}

        #[automatically_derived]
        impl #impl_with_state #private::FromMessage<__S> for #name #ty_generics #where_clause {
            fn from_message(
                incoming: &#private::Incoming,
                _: &__S,
            ) -> ::core::result::Result<Self, #private::Rejection> {
                #private::extract::<Self>(incoming)
            }
        }
    }
}

/// `NatsMessage`: the subject template, its pattern, the stream and the reply.
fn message_impl(input: &DeriveInput, options: &Options, diagnostics: &mut Diagnostics) -> TokenStream {
    let krate = &options.krate;
    let private = quote!(#krate::__private);
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let Some(subject_lit) = &options.subject else {
        diagnostics.error(
            name.span(),
            with_help(
                "`#[derive(NatsMessage)]` needs a subject template",
                "add `#[nats(subject = \"orders.{region}.created\")]`, or derive `NatsPayload` for a payload without a subject (a reply, say)",
            ),
        );
        return TokenStream::new();
    };
    if let Some(stream) = &options.stream
        && let Err(e) = nats_otel_rules::validate_name(&stream.value())
    {
        diagnostics
            .error(subspan(stream, e.range.clone()), with_help(format!("stream: {}", e.message()), e.help()));
    }
    let template = subject_lit.value();
    let parsed = match nats_otel_rules::Subject::parse(&template, nats_otel_rules::Usage::PublishTemplate) {
        Ok(parsed) => parsed,
        Err(e) => {
            diagnostics.error(subspan(subject_lit, e.range.clone()), with_help(e.message(), e.help()));
            return TokenStream::new();
        }
    };
    let named_fields = matches!(&input.data, Data::Struct(s) if matches!(s.fields, Fields::Named(_)));
    if parsed.captures().next().is_some() && !named_fields {
        diagnostics.error(
            name.span(),
            with_help(
                "subject captures need a struct with named fields",
                "captures like `{region}` name the struct's fields",
            ),
        );
        return TokenStream::new();
    }
    let pattern = parsed.pattern();
    let mut writes = Vec::new();
    for (i, segment) in parsed.segments().iter().enumerate() {
        if i > 0 {
            writes.push(quote!(out.push('.');));
        }
        match segment.token {
            nats_otel_rules::Token::Capture(field) => {
                // Spanned at the capture: a missing field or a type that cannot be
                // a token is reported there by rustc itself.
                let span = subspan(subject_lit, segment.range.clone());
                let ident = syn::Ident::new(field, span);
                writes.push(quote_spanned! {span=>
                    #private::SubjectToken::write_token(&self.#ident, #field, out)?;
                });
            }
            _ => {
                let text = &template[segment.range.clone()];
                writes.push(quote!(out.push_str(#text);));
            }
        }
    }
    let stream = match &options.stream {
        Some(stream) => quote!(::core::option::Option::Some(#stream)),
        None => quote!(::core::option::Option::None),
    };
    let reply = match &options.reply {
        Some(reply) => quote!(#reply),
        None => quote!(#private::NoReply),
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #private::NatsMessage for #name #ty_generics #where_clause {
            const TEMPLATE: &'static str = #subject_lit;
            const PATTERN: &'static str = #pattern;
            const STREAM: ::core::option::Option<&'static str> = #stream;
            type Reply = #reply;

            fn write_subject(
                &self,
                out: &mut ::std::string::String,
            ) -> ::core::result::Result<(), #private::SubjectValueError> {
                #(#writes)*
                ::core::result::Result::Ok(())
            }
        }
    }
}
