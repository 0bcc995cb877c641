//! Expand: a [`MessageType`] as `NatsPayload` (with the type as a handler
//! argument and a reply) and, for a message, `NatsMessage`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::message::model::{Codec, Kind, MessageType, TemplateSegment};

impl MessageType<'_> {
    pub(crate) fn expand(&self) -> TokenStream {
        let payload = self.payload_impls();
        let message = match self.kind {
            Kind::Message => self.message_impl(),
            Kind::Payload => TokenStream::new(),
        };
        quote!(#payload #message)
    }

    fn private(&self) -> TokenStream {
        let krate = &self.krate;
        quote!(#krate::__private)
    }

    /// `NatsPayload` with the codec, and the type as a handler argument and reply.
    fn payload_impls(&self) -> TokenStream {
        let krate = &self.krate;
        let private = self.private();
        let name = &self.input.ident;
        let (impl_generics, ty_generics, where_clause) = self.input.generics.split_for_impl();
        let schema = quote! {
            {
                #[allow(unused_imports)]
                use #private::probe::{NoSchema as _, SchemaOf as _};
                (&&#private::Probe::<Self>::new()).schema(__schemas)
            }
        };
        let (encode, decode, content_type, schema) = match &self.codec {
            Codec::Json => (
                quote!(<#private::JsonCodec as #private::Codec<Self>>::encode(self)),
                quote!(<#private::JsonCodec as #private::Codec<Self>>::decode(payload)),
                quote!(<#private::JsonCodec as #private::Codec<Self>>::CONTENT_TYPE),
                schema,
            ),
            Codec::Custom(path) => (
                quote_spanned!(path.span()=> <#path as #private::Codec<Self>>::encode(self)),
                quote_spanned!(path.span()=> <#path as #private::Codec<Self>>::decode(payload)),
                quote_spanned!(path.span()=> <#path as #private::Codec<Self>>::CONTENT_TYPE),
                schema,
            ),
            Codec::Raw { span, field: Some(field) } => (
                quote_spanned!(*span=> <#private::RawCodec as #private::Codec<#field>>::encode(&self.0)),
                quote_spanned!(*span=> <#private::RawCodec as #private::Codec<#field>>::decode(payload).map(Self)),
                quote_spanned!(*span=> <#private::RawCodec as #private::Codec<#field>>::CONTENT_TYPE),
                quote!(::core::option::Option::None),
            ),
            // Not a newtype (reported by the check): still implement the trait,
            // so that error is the only one.
            Codec::Raw { field: None, .. } => (
                quote!(::core::unreachable!()),
                quote!(::core::unreachable!()),
                quote!(::core::option::Option::None),
                quote!(::core::option::Option::None),
            ),
        };
        let mut with_state = self.input.generics.clone();
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

                fn payload_shape(__schemas: &mut #private::Schemas) -> #private::PayloadShape {
                    #private::PayloadShape::of::<Self>(#content_type).with_schema(#schema)
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
    /// Left out when the template did not parse or its captures have no fields.
    fn message_impl(&self) -> TokenStream {
        let Some(template) = self.subject.as_ref().filter(|_| self.captures_fit_fields()) else {
            return TokenStream::new();
        };
        let private = self.private();
        let name = &self.input.ident;
        let (impl_generics, ty_generics, where_clause) = self.input.generics.split_for_impl();
        let mut writes = Vec::new();
        for (i, segment) in template.segments.iter().enumerate() {
            if i > 0 {
                writes.push(quote!(out.push('.');));
            }
            match segment {
                TemplateSegment::Capture { field, span } => {
                    // Spanned at the capture: a missing field or a type that cannot be
                    // a token is reported there by rustc itself.
                    let ident = syn::Ident::new(field, *span);
                    writes.push(quote_spanned! {*span=>
                        #private::SubjectToken::write_token(&self.#ident, #field, out)?;
                    });
                }
                TemplateSegment::Literal(text) => writes.push(quote!(out.push_str(#text);)),
            }
        }
        let subject_lit = &template.lit;
        let pattern = &template.pattern;
        let stream = match &self.stream {
            Some(stream) => quote!(::core::option::Option::Some(#stream)),
            None => quote!(::core::option::Option::None),
        };
        let reply = match &self.reply {
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
}
