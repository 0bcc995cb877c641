//! The handler function: checks shared by every handler macro, and the expansion
//! that keeps it callable as written while tagging its future with a descriptor.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, ReturnType, Type};

use crate::args::Args;
use crate::diagnostics::{Diagnostics, with_help};

/// Builds the `Endpoint` expression (and the runtime crate path) from the parsed
/// arguments; `None` when they are too broken to describe an endpoint.
pub(crate) type BuildEndpoint = fn(Args, &ItemFn, &mut Diagnostics) -> Option<(TokenStream, TokenStream)>;

/// The shared shape of every handler attribute: parse the fn, check it, build the
/// endpoint from the arguments, and emit the expansion with every error. When the
/// expansion is impossible the user's item is emitted unchanged, so the IDE and the
/// rest of the crate keep seeing it.
pub(crate) fn expand_attribute(
    macro_name: &str,
    options: &'static [&'static str],
    args: TokenStream,
    item: TokenStream,
    build: BuildEndpoint,
) -> TokenStream {
    let mut diagnostics = Diagnostics::default();
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(e) => {
            // Not a function (or a body that does not parse yet): keep the tokens.
            let message = format!("`#[{macro_name}]` goes on an `async fn`");
            let error = syn::Error::new(e.span(), message).to_compile_error();
            return quote!(#item #error);
        }
    };
    check(&item_fn, macro_name, &mut diagnostics);
    let endpoint = match Args::parse(args, options) {
        Ok(args) => build(args, &item_fn, &mut diagnostics),
        Err(e) => {
            diagnostics.push(e);
            None
        }
    };
    let errors = diagnostics.to_compile_errors();
    match endpoint {
        Some((krate, endpoint)) if item_fn.sig.asyncness.is_some() && item_fn.sig.receiver().is_none() => {
            let expanded = expand(&item_fn, &krate, endpoint);
            quote!(#expanded #errors)
        }
        _ => quote!(#item_fn #errors),
    }
}

/// Checks that `item` can be a handler; reports every problem.
pub(crate) fn check(item: &ItemFn, macro_name: &str, diagnostics: &mut Diagnostics) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        diagnostics.error(
            sig.fn_token.span,
            with_help(
                format!("`#[{macro_name}]` handlers must be `async fn`"),
                format!("write `async fn {}(..)`", sig.ident),
            ),
        );
    }
    if let Some(receiver) = sig.receiver() {
        diagnostics.error(
            receiver.span(),
            with_help(
                format!("`#[{macro_name}]` handlers cannot take `self`"),
                "make the handler a free function and pass what it needs as `State<T>`",
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        diagnostics.error(variadic.span(), "handlers cannot be variadic");
    }
    if sig.constness.is_some() || sig.abi.is_some() || sig.unsafety.is_some() {
        diagnostics.error(sig.ident.span(), format!("`#[{macro_name}]` handlers must be plain `async fn`"));
    }
}

/// The user's function, as an outer function of the same name and arguments whose
/// future is the user's own wrapped in `Declared<_, Marker>`, plus the marker type
/// implementing `Descriptor` with `endpoint`.
pub(crate) fn expand(item: &ItemFn, krate: &TokenStream, endpoint: TokenStream) -> TokenStream {
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

    let arg_types: Vec<&Type> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let arg_names: Vec<_> = (0..arg_types.len()).map(|i| format_ident!("__nats_otel_arg{}", i)).collect();
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let output_span = match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let extractor_checks = arg_types.iter().map(|ty| {
        quote_spanned! {ty.span()=> #krate::__private::assert_extractor::<#ty>(); }
    });
    let outcome_check = quote_spanned! {output_span=> #krate::__private::assert_outcome::<#output>(); };

    let has_impl_trait_args = arg_types.iter().any(|ty| matches!(ty, Type::ImplTrait(_)));
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
        impl #krate::__private::Descriptor for #marker {
            fn endpoint() -> #krate::__private::Endpoint {
                #endpoint
            }
        }

        #(#outer_attrs)*
        #vis fn #name #generics (#(#arg_names: #arg_types),*)
            -> #krate::__private::Declared<#future, #marker>
        #where_clause
        {
            #(#extractor_checks)*
            #outcome_check
            #(#lints)*
            #(#inner_attrs)*
            async fn #name #generics (#inputs) -> #output #where_clause #block
            #krate::__private::Declared::new(#name #turbofish (#(#arg_names),*))
        }
    }
}
