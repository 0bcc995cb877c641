//! The handler function itself: checks on its signature, and how each of its
//! arguments is obtained (an extractor, or a subject capture of its name).

use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, Type};

use crate::diagnostics::Diagnostics;
use crate::handler::subject::Capture;

/// Checks that `item` can be a handler: a plain `async fn` without `self`.
pub(crate) fn check_signature(item: &ItemFn, macro_name: &str, diagnostics: &mut Diagnostics) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        diagnostics.error_with_help(
            sig.fn_token.span,
            format!("`#[{macro_name}]` handlers must be `async fn`"),
            format!("write `async fn {}(..)`", sig.ident),
        );
    }
    if let Some(receiver) = sig.receiver() {
        diagnostics.error_with_help(
            receiver.span(),
            format!("`#[{macro_name}]` handlers cannot take `self`"),
            "make the handler a free function and pass what it needs as `State<T>`",
        );
    }
    if let Some(variadic) = &sig.variadic {
        diagnostics.error(variadic.span(), "handlers cannot be variadic");
    }
    if sig.constness.is_some() || sig.abi.is_some() || sig.unsafety.is_some() {
        diagnostics.error(sig.ident.span(), format!("`#[{macro_name}]` handlers must be plain `async fn`"));
    }
}

/// Whether the expansion can wrap `item`: it is `async` and takes no `self`.
/// Otherwise the item is emitted as written, next to the errors.
pub(crate) fn is_expandable(item: &ItemFn) -> bool {
    item.sig.asyncness.is_some() && item.sig.receiver().is_none()
}

/// Checks the arguments: named types (no `impl Trait`), and an argument for
/// every capture of the subject.
pub(crate) fn check_arguments(item: &ItemFn, captures: &[Capture], diagnostics: &mut Diagnostics) {
    let (pats, types) = typed_arguments(item);
    for ty in types.iter().filter(|ty| matches!(ty, Type::ImplTrait(_))) {
        diagnostics.error_with_help(
            ty.span(),
            "handler arguments cannot be `impl Trait`",
            "name the type, e.g. `Json<Order>`",
        );
    }
    let sources = argument_sources(&pats, captures);
    for capture in captures {
        let used = sources.iter().any(|s| matches!(s, ArgumentSource::Capture(c) if c.name == capture.name));
        if !used {
            diagnostics.error_with_help(
                capture.span,
                format!("the capture `{{{}}}` has no argument", capture.name),
                format!(
                    "add an argument `{}: T` to the handler (any `T: FromStr`), or write `*` if the handler does not need the token",
                    capture.name
                ),
            );
        }
    }
}

/// The patterns and types of the arguments (a `self` is left out).
pub(crate) fn typed_arguments(item: &ItemFn) -> (Vec<&Pat>, Vec<&Type>) {
    item.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some((&*typed.pat, &*typed.ty)),
            FnArg::Receiver(_) => None,
        })
        .unzip()
}

/// How one argument of the handler is obtained.
pub(crate) enum ArgumentSource<'a> {
    /// Through `FromMessage`.
    Extractor,
    /// Parsed from a subject token.
    Capture(&'a Capture),
}

/// Pairs each argument with its source: an argument named like a capture
/// (`region: Region` for `{region}`) is that capture.
pub(crate) fn argument_sources<'a>(pats: &[&Pat], captures: &'a [Capture]) -> Vec<ArgumentSource<'a>> {
    pats.iter()
        .map(|pat| {
            let name = match pat {
                Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                    Some(ident.ident.to_string())
                }
                _ => None,
            };
            match name.and_then(|n| captures.iter().find(|c| c.name == n)) {
                Some(capture) => ArgumentSource::Capture(capture),
                None => ArgumentSource::Extractor,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;
    use syn::parse_quote;

    fn capture(name: &str, index: usize) -> Capture {
        Capture { name: name.to_owned(), index, span: Span::call_site() }
    }

    fn errors(check: impl FnOnce(&mut Diagnostics)) -> Vec<String> {
        let mut diagnostics = Diagnostics::default();
        check(&mut diagnostics);
        diagnostics.messages().iter().filter_map(|m| m.lines().next().map(str::to_owned)).collect()
    }

    #[test]
    fn signature() {
        let ok: ItemFn = parse_quote!(
            async fn handler(body: Bytes) {}
        );
        assert!(errors(|d| check_signature(&ok, "nats_subscribe", d)).is_empty());
        assert!(is_expandable(&ok));
        let bad: ItemFn = parse_quote!(
            unsafe fn handler(&self) {}
        );
        assert_eq!(
            errors(|d| check_signature(&bad, "nats_subscribe", d)),
            [
                "`#[nats_subscribe]` handlers must be `async fn`",
                "`#[nats_subscribe]` handlers cannot take `self`",
                "`#[nats_subscribe]` handlers must be plain `async fn`",
            ]
        );
        assert!(!is_expandable(&bad));
    }

    #[test]
    fn arguments_named_like_captures_take_them() {
        let item: ItemFn = parse_quote!(
            async fn handler(region: String, Json(o): Json<Order>, id: u64) {}
        );
        let captures = [capture("region", 1), capture("id", 2)];
        assert!(errors(|d| check_arguments(&item, &captures, d)).is_empty());
        let (pats, _) = typed_arguments(&item);
        let sources = argument_sources(&pats, &captures);
        let kinds: Vec<Option<&str>> = sources
            .iter()
            .map(|s| match s {
                ArgumentSource::Capture(c) => Some(c.name.as_str()),
                ArgumentSource::Extractor => None,
            })
            .collect();
        assert_eq!(kinds, [Some("region"), None, Some("id")]);
    }

    #[test]
    fn every_capture_needs_an_argument_and_types_are_named() {
        let item: ItemFn = parse_quote!(
            async fn handler(regoin: String, body: impl Send) {}
        );
        let captures = [capture("region", 1), capture("shop", 2)];
        assert_eq!(
            errors(|d| check_arguments(&item, &captures, d)),
            [
                "handler arguments cannot be `impl Trait`",
                "the capture `{region}` has no argument",
                "the capture `{shop}` has no argument",
            ]
        );
    }
}
