//! The handler function: checks shared by every handler macro, and the expansion
//! that keeps it callable as written while tagging its future with a descriptor.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, Pat, ReturnType, Type};

use crate::args::Args;
use crate::diagnostics::{Diagnostics, with_help};
use crate::handler_subject::Capture;

/// What a handler attribute's arguments describe.
pub(crate) struct Built {
    /// The runtime crate's path.
    pub(crate) krate: TokenStream,
    /// The `Endpoint` expression.
    pub(crate) endpoint: TokenStream,
    /// The captures of the handler's subject, filled from arguments of their name.
    pub(crate) captures: Vec<Capture>,
    /// Compile-time checks to emit next to the handler.
    pub(crate) checks: TokenStream,
    /// The `message = Type` of the handler, whose reply type it must return.
    pub(crate) message: Option<syn::Type>,
}

/// Builds the endpoint from the parsed arguments; `None` when they are too
/// broken to describe one.
pub(crate) type BuildEndpoint = fn(Args, &ItemFn, &mut Diagnostics) -> Option<Built>;

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
    let built = match Args::parse(args, options) {
        Ok(args) => build(args, &item_fn, &mut diagnostics),
        Err(e) => {
            diagnostics.push(e);
            None
        }
    };
    let expandable = item_fn.sig.asyncness.is_some() && item_fn.sig.receiver().is_none();
    match built {
        Some(built) if expandable => {
            let expanded = expand(&item_fn, built, &mut diagnostics);
            let errors = diagnostics.to_compile_errors();
            quote!(#expanded #errors)
        }
        _ => {
            let errors = diagnostics.to_compile_errors();
            quote!(#item_fn #errors)
        }
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

/// How one argument of the handler is obtained.
enum ArgSource<'a> {
    /// Through `FromMessage`.
    Extractor,
    /// Parsed from a subject token.
    Capture(&'a Capture),
}

/// Pairs each argument with its source: an argument named like a capture
/// (`region: Region` for `{region}`) is that capture. Reports captures without
/// an argument.
fn arg_sources<'a>(
    arg_pats: &[&Pat],
    captures: &'a [Capture],
    diagnostics: &mut Diagnostics,
) -> Vec<ArgSource<'a>> {
    let sources: Vec<ArgSource<'a>> = arg_pats
        .iter()
        .map(|pat| {
            let name = match pat {
                Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                    Some(ident.ident.to_string())
                }
                _ => None,
            };
            match name.and_then(|n| captures.iter().find(|c| c.name == n)) {
                Some(capture) => ArgSource::Capture(capture),
                None => ArgSource::Extractor,
            }
        })
        .collect();
    for capture in captures {
        let used = sources.iter().any(|s| matches!(s, ArgSource::Capture(c) if c.name == capture.name));
        if !used {
            diagnostics.error(
                capture.span,
                with_help(
                    format!("the capture `{{{}}}` has no argument", capture.name),
                    format!(
                        "add an argument `{}: T` to the handler (any `T: FromStr`), or write `*` if the handler does not need the token",
                        capture.name
                    ),
                ),
            );
        }
    }
    sources
}

/// The user's function, as an outer function of the same name and arguments whose
/// future is the user's own wrapped in `Declared<_, Marker>`, plus the marker type
/// implementing `Descriptor` (the endpoint) and `Declaration` (how each argument
/// is extracted: extractors through `FromMessage`, captures from their token).
pub(crate) fn expand(item: &ItemFn, built: Built, diagnostics: &mut Diagnostics) -> TokenStream {
    let Built { krate, endpoint, captures, checks, message } = built;
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

    let (arg_pats, arg_types): (Vec<&Pat>, Vec<&Type>) = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some((&*typed.pat, &*typed.ty)),
            FnArg::Receiver(_) => None,
        })
        .unzip();
    let has_impl_trait_args = arg_types.iter().any(|ty| matches!(ty, Type::ImplTrait(_)));
    for ty in arg_types.iter().filter(|ty| matches!(ty, Type::ImplTrait(_))) {
        diagnostics.error(
            ty.span(),
            with_help("handler arguments cannot be `impl Trait`", "name the type, e.g. `Json<Order>`"),
        );
    }
    let sources = arg_sources(&arg_pats, &captures, diagnostics);
    let arg_names: Vec<_> = (0..arg_types.len()).map(|i| format_ident!("__nats_otel_arg{}", i)).collect();
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let output_span = match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let private = quote!(#krate::__private);
    let extractor_types: Vec<&Type> = arg_types
        .iter()
        .zip(&sources)
        .filter(|(_, source)| matches!(source, ArgSource::Extractor))
        .map(|(ty, _)| *ty)
        .collect();
    let extractor_checks = extractor_types.iter().map(|ty| {
        quote_spanned! {ty.span()=> #private::assert_extractor::<#ty>(); }
    });
    let outcome_check = quote_spanned! {output_span=> #private::assert_outcome::<#output>(); };
    let reply_check = message.map(|message| {
        quote_spanned! {output_span=> #private::assert_returns_reply::<#message, #output>(); }
    });
    let extractions = arg_types.iter().zip(&sources).map(|(ty, source)| match source {
        ArgSource::Extractor => quote! {
            <#ty as #private::FromMessage<__S>>::from_message(__incoming, __state)?
        },
        ArgSource::Capture(Capture { name, index, .. }) => quote_spanned! {ty.span()=>
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
