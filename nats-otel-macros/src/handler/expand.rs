//! The expansion shared by every handler attribute: the user's function stays
//! callable as written, its future tagged with a descriptor of the endpoint.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericParam, ItemFn, ReturnType, Type};

use crate::handler::HandlerAttribute;
use crate::handler::item::{ArgumentSource, argument_sources, typed_arguments};
use crate::handler::subject::Capture;

/// The user's function, as an outer function of the same name and arguments whose
/// future is the user's own wrapped in `Declared<_, Marker>`, plus the marker type
/// implementing `Descriptor` (the endpoint) and `Declaration` (how each argument
/// is extracted: extractors through `FromMessage`, captures from their token).
///
/// `endpoint` is the attribute's `Endpoint` expression; next to the handler go
/// the compile-time checks that each subject lies within `message`'s pattern.
pub(crate) fn handler<A: HandlerAttribute>(
    item: &ItemFn,
    attribute: &A,
    endpoint: TokenStream,
) -> TokenStream {
    let options = attribute.options();
    let krate = &options.krate;
    let message = options.message.as_ref();
    let captures = attribute.captures();
    let mut checks: TokenStream = match message {
        Some(message) => attribute.subjects().iter().map(|s| s.covered_by(message, krate)).collect(),
        None => TokenStream::new(),
    };
    checks.extend(attribute.checks());
    let ItemFn { attrs, vis, sig, block } = item;
    let name = &sig.ident;
    let marker = format_ident!("__nats_otel_{}", name);
    let where_clause = &sig.generics.where_clause;
    let generics = &sig.generics;

    let (outer_attrs, inner_attrs): (Vec<_>, Vec<_>) = attrs.iter().partition(|a| {
        ["doc", "cfg", "cfg_attr", "allow", "expect", "warn", "deny", "deprecated", "must_use"]
            .iter()
            .any(|known| a.path().is_ident(known))
    });
    let cfgs: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("cfg")).collect();
    let lints: Vec<_> = attrs
        .iter()
        .filter(|a| ["allow", "expect", "warn", "deny"].iter().any(|l| a.path().is_ident(l)))
        .collect();

    let (arg_pats, arg_types) = typed_arguments(item);
    let has_impl_trait_args = arg_types.iter().any(|ty| matches!(ty, Type::ImplTrait(_)));
    let sources = argument_sources(&arg_pats, captures);
    let arg_names: Vec<_> = (0..arg_types.len()).map(|i| format_ident!("__nats_otel_arg{}", i)).collect();
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let output_span = match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let private = options.private();
    let extractor_types: Vec<&Type> = arg_types
        .iter()
        .zip(&sources)
        .filter(|(_, source)| matches!(source, ArgumentSource::Extractor))
        .map(|(ty, _)| *ty)
        .collect();
    let batched = attribute.batched();
    let extractor_checks = extractor_types.iter().map(|ty| {
        if batched {
            quote_spanned! {ty.span()=> #private::assert_batch_argument::<#ty>(); }
        } else {
            quote_spanned! {ty.span()=> #private::assert_extractor::<#ty>(); }
        }
    });
    let outcome_check = quote_spanned! {output_span=> #private::assert_outcome::<#output>(); };
    let reply_check = message.map(|message| {
        quote_spanned! {output_span=> #private::assert_returns_reply::<#message, #output>(); }
    });
    let extractions = arg_types.iter().zip(&sources).map(|(ty, source)| match source {
        ArgumentSource::Extractor => quote! {
            <#ty as #private::FromMessage<__S>>::from_message(__incoming, __state)?
        },
        ArgumentSource::Capture(Capture { name, index, .. }) => quote_spanned! {ty.span()=>
            #private::capture::<#ty>(__incoming, #index, #name)?
        },
    });
    let flag = |flag: TokenStream| {
        let types = &extractor_types;
        quote!(false #(|| <#types as #private::FromMessage<__S>>::#flag)*)
    };
    let trace_context_in_body = flag(quote!(TRACE_CONTEXT_IN_BODY));
    let settles_itself = flag(quote!(SETTLES_ITSELF));

    // The declaration is generic over the service state and the fn's own generics.
    let mut declaration_generics = generics.clone();
    declaration_generics.params.push(syn::parse_quote!(__S));
    {
        let where_clause = declaration_generics.make_where_clause();
        for ty in &extractor_types {
            where_clause.predicates.push(syn::parse_quote!(#ty: #private::FromMessage<__S>));
        }
    }
    let (declaration_impl, _, declaration_where) = declaration_generics.split_for_impl();
    let declaration = (!has_impl_trait_args).then(|| {
        quote! {
            #(#cfgs)*
            impl #declaration_impl #private::Declaration<__S, (#(#arg_types,)*)> for #marker
            #declaration_where
            {
                const TRACE_CONTEXT_IN_BODY: bool = #trace_context_in_body;
                const SETTLES_ITSELF: bool = #settles_itself;
                const BATCH: bool = #batched;

                #[inline]
                fn extract(
                    __incoming: &#private::Incoming,
                    __state: &__S,
                ) -> ::core::result::Result<(#(#arg_types,)*), #private::Rejection> {
                    let _ = (&__incoming, &__state);
                    ::core::result::Result::Ok((#(#extractions,)*))
                }
            }
        }
    });

    let turbofish_params: Vec<_> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            GenericParam::Const(c) => Some(&c.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let turbofish = if turbofish_params.is_empty() || has_impl_trait_args {
        quote!()
    } else {
        quote!(::<#(#turbofish_params),*>)
    };
    // A batch's messages are described by what reads each one.
    let payload_types: Vec<&Type> =
        extractor_types.iter().map(|ty| if batched { batch_item_type(ty) } else { ty }).collect();
    let shape = shape(&private, sig, attrs, message, &payload_types);
    let inputs = &sig.inputs;
    let future = quote_spanned! {sig.ident.span()=>
        impl ::core::future::Future<Output = #output> + ::core::marker::Send
    };

    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #marker;

        #(#cfgs)*
        impl #private::Descriptor for #marker {
            fn endpoint() -> #private::Endpoint {
                #endpoint
            }

            #shape
        }

        #declaration

        #(#cfgs)*
        #checks

        #(#outer_attrs)*
        #vis fn #name #generics (#(#arg_names: #arg_types),*)
            -> #private::Declared<#future, #marker>
        #where_clause
        {
            #(#extractor_checks)*
            #outcome_check
            #reply_check
            #(#lints)*
            #(#inner_attrs)*
            async fn #name #generics (#inputs) -> #output #where_clause #block
            #private::Declared::new(#name #turbofish (#(#arg_names),*))
        }
    }
}

/// `Descriptor::shape`: the first argument (after `message`) that describes a
/// payload, and the reply from the return type (`Result<T, E>` read as `T`),
/// resolved by the runtime's probes where the types are concrete. Generic
/// handlers and `impl Trait` types keep the default (nothing described): their
/// types cannot be named outside the function.
fn shape(
    private: &TokenStream,
    sig: &syn::Signature,
    attrs: &[syn::Attribute],
    message: Option<&syn::Type>,
    extractor_types: &[&Type],
) -> TokenStream {
    if !sig.generics.params.is_empty() {
        return TokenStream::new();
    }
    let nameable = |ty: &&Type| !matches!(ty, Type::ImplTrait(_)) && !mentions_impl_trait(ty);
    let payload_types: Vec<&Type> =
        message.into_iter().chain(extractor_types.iter().copied()).filter(nameable).collect();
    let reply_type = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(ok_type(ty)).filter(nameable),
    };
    let reply = match reply_type {
        Some(ty) => quote!((&&&#private::Probe::<#ty>::new()).payload(__schemas)),
        None => quote!(::core::option::Option::None),
    };
    let description = doc_comment(attrs).map(|doc| quote!(.described(#doc)));
    quote! {
        fn shape(__schemas: &mut #private::Schemas) -> #private::HandlerShape {
            #[allow(unused_imports)]
            use #private::probe::{ByKind as _, Silent as _, WithSchema as _};
            let mut __payload = ::core::option::Option::None;
            #(
                if __payload.is_none() {
                    __payload = (&&&#private::Probe::<#payload_types>::new()).payload(__schemas);
                }
            )*
            #private::HandlerShape::new(__payload, #reply) #description
        }
    }
}

/// The item's doc comment, its lines trimmed and joined.
fn doc_comment(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(line), .. }),
                ..
            }) => Some(line.value().trim().to_owned()),
            _ => None,
        })
        .collect();
    let doc = lines.join("\n").trim().to_owned();
    (!doc.is_empty()).then_some(doc)
}

/// `X` of `Batch<X>` (any path ending in `Batch`), else the type itself.
fn batch_item_type(ty: &Type) -> &Type {
    first_type_argument(ty, "Batch")
}

/// `T` of `Result<T, E>` (any path ending in `Result`, as `anyhow::Result<T>`),
/// else the type itself.
fn ok_type(ty: &Type) -> &Type {
    first_type_argument(ty, "Result")
}

/// The first type argument of `ty` when its path ends in `name`, else `ty`.
fn first_type_argument<'t>(ty: &'t Type, name: &str) -> &'t Type {
    if let Type::Path(path) = ty
        && let Some(last) = path.path.segments.last()
        && last.ident == name
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(first)) = args.args.first()
    {
        return first;
    }
    ty
}

/// Whether `impl Trait` appears anywhere in `ty` (`Json<impl Trait>` is no type).
fn mentions_impl_trait(ty: &Type) -> bool {
    quote!(#ty)
        .into_iter()
        .any(|token| matches!(token, proc_macro2::TokenTree::Ident(ident) if ident == "impl"))
}
