//! Attribute arguments: an optional leading string literal, then `key = value`
//! pairs, each key at most once, unknown keys reported with the valid ones.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitInt, LitStr, Token};

use crate::diagnostics::{Diagnostics, with_help};

/// One argument: `"positional"` or `key = value`.
pub(crate) enum Arg {
    Positional(LitStr),
    Named { key: Ident, value: Expr },
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(Arg::Positional(input.parse()?));
        }
        let key = if input.peek(Token![crate]) {
            let krate: Token![crate] = input.parse()?;
            Ident::new("crate", krate.span)
        } else {
            input.parse::<Ident>()?
        };
        input.parse::<Token![=]>()?;
        Ok(Arg::Named { key, value: input.parse()? })
    }
}

/// The named arguments of one attribute, taken out one by one by key.
pub(crate) struct Args {
    pub(crate) positional: Vec<LitStr>,
    named: Vec<(Ident, Expr, bool)>,
    valid: &'static [&'static str],
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream, valid: &'static [&'static str]) -> syn::Result<Self> {
        let args = syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens)?;
        let mut positional = Vec::new();
        let mut named = Vec::new();
        for arg in args {
            match arg {
                Arg::Positional(lit) => positional.push(lit),
                Arg::Named { key, value } => named.push((key, value, false)),
            }
        }
        Ok(Self { positional, named, valid })
    }

    /// Takes the value of `key`, reporting a second occurrence.
    pub(crate) fn take(&mut self, key: &str, diagnostics: &mut Diagnostics) -> Option<(Ident, Expr)> {
        let mut found: Option<(Ident, Expr)> = None;
        for (k, value, taken) in &mut self.named {
            if k != key {
                continue;
            }
            *taken = true;
            if found.is_some() {
                diagnostics.error(
                    k.span(),
                    with_help(format!("`{key}` is given more than once"), format!("remove this `{key}`")),
                );
            } else {
                found = Some((k.clone(), value.clone()));
            }
        }
        found
    }

    /// Reports every key that was never taken.
    pub(crate) fn finish(self, diagnostics: &mut Diagnostics) {
        let expected = self.valid.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        for (key, _, taken) in self.named {
            if !taken {
                diagnostics.error(
                    key.span(),
                    with_help(format!("unknown option `{key}`"), format!("expected one of: {expected}")),
                );
            }
        }
    }
}

/// The string literal of `value`, or an error saying what was expected.
pub(crate) fn lit_str(key: &Ident, value: &Expr, diagnostics: &mut Diagnostics) -> Option<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(lit), .. }) => Some(lit.clone()),
        other => {
            diagnostics.error(
                other.span(),
                with_help(format!("`{key}` takes a string literal"), format!("write `{key} = \"…\"`")),
            );
            None
        }
    }
}

/// The positive integer literal of `value`.
pub(crate) fn lit_positive(key: &Ident, value: &Expr, diagnostics: &mut Diagnostics) -> Option<(u64, Span)> {
    let lit: Option<&LitInt> = match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(lit), .. }) => Some(lit),
        _ => None,
    };
    let Some(lit) = lit else {
        diagnostics.error(
            value.span(),
            with_help(format!("`{key}` takes an integer literal"), format!("write `{key} = 16`")),
        );
        return None;
    };
    match lit.base10_parse::<u64>() {
        Ok(0) => {
            diagnostics.error(
                lit.span(),
                with_help(
                    format!("`{key}` must be at least 1"),
                    "use `1` to handle messages one at a time, in order",
                ),
            );
            None
        }
        Ok(n) => Some((n, lit.span())),
        Err(e) => {
            diagnostics.error(lit.span(), e);
            None
        }
    }
}

/// `trace = "parent" | "link"`, as the `TraceMode` variant name.
pub(crate) fn trace_mode(args: &mut Args, diagnostics: &mut Diagnostics) -> Option<TokenStream> {
    let (key, value) = args.take("trace", diagnostics)?;
    let lit = lit_str(&key, &value, diagnostics)?;
    match lit.value().as_str() {
        "parent" => Some(quote::quote!(Parent)),
        "link" => Some(quote::quote!(Link)),
        other => {
            diagnostics.error(
                lit.span(),
                with_help(
                    format!("unknown trace mode `{other}`"),
                    "use `trace = \"parent\"` (default: continue the publisher's trace) or `trace = \"link\"` (new trace, linked)",
                ),
            );
            None
        }
    }
}

/// `crate = "path"`: where the runtime is; `::nats_otel_runtime` by default.
pub(crate) fn crate_path(args: &mut Args, diagnostics: &mut Diagnostics) -> TokenStream {
    let default = quote::quote!(::nats_otel_runtime);
    let Some(lit) = args.take("crate", diagnostics).and_then(|(k, v)| lit_str(&k, &v, diagnostics)) else {
        return default;
    };
    match lit.parse::<syn::Path>() {
        Ok(path) => quote::quote!(#path),
        Err(e) => {
            diagnostics.error(lit.span(), e);
            default
        }
    }
}

/// One of a fixed set of string values.
pub(crate) fn lit_choice(
    key: &Ident,
    value: &Expr,
    choices: &[&str],
    diagnostics: &mut Diagnostics,
) -> Option<(String, Span)> {
    let lit = lit_str(key, value, diagnostics)?;
    let text = lit.value();
    if choices.contains(&text.as_str()) {
        return Some((text, lit.span()));
    }
    let expected = choices.iter().map(|c| format!("`\"{c}\"`")).collect::<Vec<_>>().join(", ");
    diagnostics.error(
        lit.span(),
        with_help(format!("unknown `{key}` value `{text}`"), format!("expected one of: {expected}")),
    );
    None
}

/// `true` or `false`.
pub(crate) fn lit_bool(key: &Ident, value: &Expr, diagnostics: &mut Diagnostics) -> Option<bool> {
    match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => Some(b.value),
        other => {
            diagnostics.error(
                other.span(),
                with_help(format!("`{key}` takes `true` or `false`"), format!("write `{key} = false`")),
            );
            None
        }
    }
}

/// A string literal or an array of them: `"a"` or `["a", "b"]`.
pub(crate) fn lit_str_list(key: &Ident, value: &Expr, diagnostics: &mut Diagnostics) -> Option<Vec<LitStr>> {
    match value {
        Expr::Array(array) => {
            let mut out = Vec::new();
            for element in &array.elems {
                out.push(lit_str(key, element, diagnostics)?);
            }
            Some(out)
        }
        single => lit_str(key, single, diagnostics).map(|lit| vec![lit]),
    }
}

/// A type, written as a path: `message = OrderCreated`.
pub(crate) fn type_path(key: &Ident, value: &Expr, diagnostics: &mut Diagnostics) -> Option<syn::Type> {
    match value {
        Expr::Path(path) => {
            Some(syn::Type::Path(syn::TypePath { qself: path.qself.clone(), path: path.path.clone() }))
        }
        other => {
            diagnostics.error(
                other.span(),
                with_help(format!("`{key}` takes a type"), format!("write `{key} = OrderCreated`")),
            );
            None
        }
    }
}
