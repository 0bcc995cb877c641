//! `#[derive(NatsMessage)]`: a type with a subject template, checked at compile time.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::diagnostics::{Diagnostics, subspan, with_help};

const OPTIONS: &str = "`subject`, `stream`, `crate`";

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut diagnostics = Diagnostics::default();
    let mut subject: Option<LitStr> = None;
    let mut stream: Option<LitStr> = None;
    let mut krate: Option<syn::Path> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("nats")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            let slot = match key.as_str() {
                "subject" => &mut subject,
                "stream" => &mut stream,
                "crate" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    krate = Some(lit.parse()?);
                    return Ok(());
                }
                _ => {
                    return Err(meta.error(with_help(
                        format!("unknown option `{key}`"),
                        format!("expected one of: {OPTIONS}"),
                    )));
                }
            };
            let lit: LitStr = meta.value()?.parse()?;
            if slot.is_some() {
                return Err(meta.error(with_help(format!("`{key}` is given more than once"), "remove one")));
            }
            *slot = Some(lit);
            Ok(())
        });
        if let Err(e) = parsed {
            diagnostics.push(e);
        }
    }
    let krate = krate.map_or_else(|| quote!(::nats_otel_runtime), |p| quote!(#p));
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    let named_fields = matches!(&input.data, Data::Struct(s) if matches!(s.fields, Fields::Named(_)));
    if !named_fields {
        diagnostics.error(
            name.span(),
            with_help(
                "`#[derive(NatsMessage)]` needs a struct with named fields",
                "subject captures like `{region}` name the struct's fields",
            ),
        );
    }
    let Some(subject_lit) = subject else {
        diagnostics.error(
            name.span(),
            with_help(
                "`#[derive(NatsMessage)]` needs a subject template",
                "add `#[nats(subject = \"orders.{region}.created\")]`",
            ),
        );
        return diagnostics.to_compile_errors();
    };
    if let Some(stream) = &stream
        && let Err(e) = nats_otel_subject::validate_name(&stream.value())
    {
        diagnostics
            .error(subspan(stream, e.range.clone()), with_help(format!("stream: {}", e.message()), e.help()));
    }
    let template = subject_lit.value();
    let parsed = match nats_otel_subject::Subject::parse(&template, nats_otel_subject::Usage::PublishTemplate)
    {
        Ok(parsed) => parsed,
        Err(e) => {
            diagnostics.error(subspan(&subject_lit, e.range.clone()), with_help(e.message(), e.help()));
            return diagnostics.to_compile_errors();
        }
    };
    let pattern = parsed.pattern();
    let mut writes = Vec::new();
    for (i, segment) in parsed.segments().iter().enumerate() {
        if i > 0 {
            writes.push(quote!(out.push('.');));
        }
        match segment.token {
            nats_otel_subject::Token::Capture(field) => {
                // Spanned at the capture: a missing field or a type that cannot be
                // a token is reported there by rustc itself.
                let span = subspan(&subject_lit, segment.range.clone());
                let ident = syn::Ident::new(field, span);
                writes.push(quote_spanned! {span=>
                    #krate::__private::SubjectToken::write_token(&self.#ident, #field, out)?;
                });
            }
            _ => {
                let text = &template[segment.range.clone()];
                writes.push(quote!(out.push_str(#text);));
            }
        }
    }
    let stream = match &stream {
        Some(stream) => quote!(::core::option::Option::Some(#stream)),
        None => quote!(::core::option::Option::None),
    };
    let mut with_state = input.generics.clone();
    with_state.params.insert(0, syn::parse_quote!(__S));
    let (impl_with_state, _, _) = with_state.split_for_impl();
    let errors = diagnostics.to_compile_errors();
    quote! {
        #errors
        #[automatically_derived]
        impl #impl_generics #krate::__private::NatsMessage for #name #ty_generics #where_clause {
            const TEMPLATE: &'static str = #subject_lit;
            const PATTERN: &'static str = #pattern;
            const STREAM: ::core::option::Option<&'static str> = #stream;

            fn write_subject(
                &self,
                out: &mut ::std::string::String,
            ) -> ::core::result::Result<(), #krate::__private::SubjectValueError> {
                #(#writes)*
                ::core::result::Result::Ok(())
            }

            fn encode(&self) -> ::core::result::Result<#krate::Bytes, #krate::message::CodecError> {
                #krate::__private::json_encode(self)
            }

            fn decode(payload: &[u8]) -> ::core::result::Result<Self, #krate::message::CodecError> {
                #krate::__private::json_decode(payload)
            }
        }

        #[automatically_derived]
        impl #impl_generics #krate::__private::Extractor for #name #ty_generics #where_clause {}

        #[automatically_derived]
        impl #impl_with_state #krate::__private::FromMessage<__S> for #name #ty_generics #where_clause {
            fn from_message(
                incoming: &#krate::__private::Incoming,
                _: &__S,
            ) -> ::core::result::Result<Self, #krate::__private::Rejection> {
                #krate::__private::extract::<Self>(incoming)
            }
        }
    }
}
