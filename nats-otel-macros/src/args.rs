//! Attribute arguments: an optional leading string literal, then `key = value`
//! pairs, each key at most once, unknown keys reported with the valid ones; and
//! the readers that turn one value into a typed, spanned model value. A value
//! of the wrong shape is reported here, at the value, and left out of the model.

use std::str::FromStr;

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Expr, Ident, Lit, LitStr, Token};

use crate::diagnostics::Diagnostics;
use crate::duration::Duration;
use crate::spanned::Spanned;

/// One argument as written: `"positional"` or `key = value`.
enum RawArg {
    Positional(LitStr),
    Named(Arg),
}

impl Parse for RawArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(RawArg::Positional(input.parse()?));
        }
        let key = if input.peek(Token![crate]) {
            let krate: Token![crate] = input.parse()?;
            Ident::new("crate", krate.span)
        } else {
            input.parse::<Ident>()?
        };
        input.parse::<Token![=]>()?;
        Ok(RawArg::Named(Arg { key, value: input.parse()? }))
    }
}

/// The arguments of one attribute, taken out one by one by key.
pub(crate) struct Args {
    pub(crate) positional: Vec<LitStr>,
    named: Vec<(Arg, bool)>,
    valid: &'static [&'static str],
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream, valid: &'static [&'static str]) -> syn::Result<Self> {
        let args = syn::parse::Parser::parse2(Punctuated::<RawArg, Token![,]>::parse_terminated, tokens)?;
        let mut positional = Vec::new();
        let mut named = Vec::new();
        for arg in args {
            match arg {
                RawArg::Positional(lit) => positional.push(lit),
                RawArg::Named(arg) => named.push((arg, false)),
            }
        }
        Ok(Self { positional, named, valid })
    }

    /// Takes the argument `key`, reporting a second occurrence.
    pub(crate) fn take(&mut self, key: &str, diagnostics: &mut Diagnostics) -> Option<Arg> {
        let mut found: Option<Arg> = None;
        for (arg, taken) in &mut self.named {
            if arg.key != key {
                continue;
            }
            *taken = true;
            if found.is_some() {
                diagnostics.error_with_help(
                    arg.key.span(),
                    format!("`{key}` is given more than once"),
                    format!("remove this `{key}`"),
                );
            } else {
                found = Some(arg.clone());
            }
        }
        found
    }

    /// Reports every key that was never taken.
    pub(crate) fn finish(self, diagnostics: &mut Diagnostics) {
        let expected = self.valid.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        for (arg, taken) in self.named {
            if !taken {
                diagnostics.error_with_help(
                    arg.key.span(),
                    format!("unknown option `{}`", arg.key),
                    format!("expected one of: {expected}"),
                );
            }
        }
    }
}

/// An option whose value is one of a few strings, read into an enum.
pub(crate) trait Choice: Copy + 'static {
    /// Each accepted string and the value it stands for.
    const CHOICES: &'static [(&'static str, Self)];

    /// The error for any other string: message and help.
    fn unknown(key: &Ident, text: &str) -> (String, String) {
        let expected = Self::CHOICES.iter().map(|(c, _)| format!("`\"{c}\"`")).collect::<Vec<_>>().join(", ");
        (format!("unknown `{key}` value `{text}`"), format!("expected one of: {expected}"))
    }
}

/// One `key = value` argument.
#[derive(Clone)]
pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) value: Expr,
}

impl Arg {
    /// A string literal: `key = "…"`.
    pub(crate) fn string(&self, diagnostics: &mut Diagnostics) -> Option<LitStr> {
        string(&self.key, &self.value, diagnostics)
    }

    /// A string literal or an array of them: `"a"` or `["a", "b"]`.
    pub(crate) fn strings(&self, diagnostics: &mut Diagnostics) -> Option<Vec<LitStr>> {
        match &self.value {
            Expr::Array(array) => {
                let mut out = Vec::new();
                for element in &array.elems {
                    out.push(string(&self.key, element, diagnostics)?);
                }
                Some(out)
            }
            single => string(&self.key, single, diagnostics).map(|lit| vec![lit]),
        }
    }

    /// An integer literal of type `T`, the type the runtime takes: `key = 16`.
    /// Whether the number is allowed is a rule, checked later; here only its
    /// shape and that it fits in `T` (no silent wrap-around).
    pub(crate) fn integer<T>(&self, diagnostics: &mut Diagnostics) -> Option<Spanned<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.integer_described(diagnostics, "an integer literal", "16")
    }

    /// [`integer`](Self::integer), saying what the number means when it is missing.
    pub(crate) fn integer_described<T>(
        &self,
        diagnostics: &mut Diagnostics,
        what: &str,
        example: &str,
    ) -> Option<Spanned<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let key = &self.key;
        let Expr::Lit(syn::ExprLit { lit: Lit::Int(lit), .. }) = &self.value else {
            diagnostics.error_with_help(
                self.value.span(),
                format!("`{key}` takes {what}"),
                format!("write `{key} = {example}`"),
            );
            return None;
        };
        match lit.base10_parse::<T>() {
            Ok(n) => Some(Spanned::new(n, lit.span())),
            Err(_) => {
                diagnostics.error_with_help(
                    lit.span(),
                    format!(
                        "`{key} = {}` does not fit in `{}`",
                        lit.base10_digits(),
                        std::any::type_name::<T>()
                    ),
                    "write a smaller number",
                );
                None
            }
        }
    }

    /// `true` or `false`.
    pub(crate) fn boolean(&self, diagnostics: &mut Diagnostics) -> Option<bool> {
        match &self.value {
            Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => Some(b.value),
            other => {
                let key = &self.key;
                diagnostics.error_with_help(
                    other.span(),
                    format!("`{key}` takes `true` or `false`"),
                    format!("write `{key} = false`"),
                );
                None
            }
        }
    }

    /// A type, written as a path: `message = OrderCreated`.
    pub(crate) fn type_path(&self, diagnostics: &mut Diagnostics) -> Option<syn::Type> {
        match &self.value {
            Expr::Path(path) => {
                Some(syn::Type::Path(syn::TypePath { qself: path.qself.clone(), path: path.path.clone() }))
            }
            other => {
                let key = &self.key;
                diagnostics.error_with_help(
                    other.span(),
                    format!("`{key}` takes a type"),
                    format!("write `{key} = OrderCreated`"),
                );
                None
            }
        }
    }

    /// One of the strings of `T`.
    pub(crate) fn choice<T: Choice>(&self, diagnostics: &mut Diagnostics) -> Option<Spanned<T>> {
        let lit = self.string(diagnostics)?;
        let text = lit.value();
        match T::CHOICES.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => Some(Spanned::new(*value, lit.span())),
            None => {
                let (message, help) = T::unknown(&self.key, &text);
                diagnostics.error_with_help(lit.span(), message, help);
                None
            }
        }
    }

    /// A duration string: `key = "30s"`.
    pub(crate) fn duration(&self, diagnostics: &mut Diagnostics) -> Option<Spanned<Duration>> {
        duration(&self.string(diagnostics)?, diagnostics)
    }

    /// A list of durations, all valid or none: `key = ["1s", "10s"]`.
    pub(crate) fn durations(&self, diagnostics: &mut Diagnostics) -> Option<Vec<Spanned<Duration>>> {
        let lits = self.strings(diagnostics)?;
        let parsed: Vec<Option<Spanned<Duration>>> =
            lits.iter().map(|lit| duration(lit, diagnostics)).collect();
        parsed.into_iter().collect()
    }

    /// A path in a string: `crate = "::my::runtime"`.
    pub(crate) fn path(&self, diagnostics: &mut Diagnostics) -> Option<syn::Path> {
        let lit = self.string(diagnostics)?;
        match lit.parse::<syn::Path>() {
            Ok(path) => Some(path),
            Err(e) => {
                diagnostics.push(syn::Error::new(lit.span(), e));
                None
            }
        }
    }
}

fn string(key: &Ident, value: &Expr, diagnostics: &mut Diagnostics) -> Option<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(lit), .. }) => Some(lit.clone()),
        other => {
            diagnostics.error_with_help(
                other.span(),
                format!("`{key}` takes a string literal"),
                format!("write `{key} = \"…\"`"),
            );
            None
        }
    }
}

fn duration(lit: &LitStr, diagnostics: &mut Diagnostics) -> Option<Spanned<Duration>> {
    match Duration::parse(&lit.value()) {
        Ok(duration) => Some(Spanned::new(duration, lit.span())),
        Err(e) => {
            diagnostics.error_with_help(
                crate::diagnostics::subspan(lit, e.range),
                format!("invalid duration `{}`: {}", lit.value(), e.message),
                Duration::HELP,
            );
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use quote::quote;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Color {
        Red,
        Blue,
    }

    impl Choice for Color {
        const CHOICES: &'static [(&'static str, Self)] = &[("red", Color::Red), ("blue", Color::Blue)];
    }

    fn args(tokens: TokenStream) -> Args {
        Args::parse(tokens, &["a", "b", "crate"]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn positional_named_duplicate_and_unknown() {
        let mut diagnostics = Diagnostics::default();
        let mut args = args(quote!("lead", a = 1, b = "x", a = 2, c = true, crate = "rt"));
        assert_eq!(args.positional.len(), 1);
        let a = args.take("a", &mut diagnostics).and_then(|a| a.integer::<u8>(&mut diagnostics));
        assert_eq!(a.map(|a| a.value), Some(1));
        assert!(args.take("crate", &mut diagnostics).is_some());
        args.finish(&mut diagnostics);
        assert_eq!(
            diagnostics.messages(),
            [
                "`a` is given more than once\n\nhelp: remove this `a`",
                "unknown option `b`\n\nhelp: expected one of: `a`, `b`, `crate`",
                "unknown option `c`\n\nhelp: expected one of: `a`, `b`, `crate`",
            ]
        );
    }

    #[test]
    fn readers_report_the_wrong_shape() {
        let mut diagnostics = Diagnostics::default();
        let mut args = args(quote!(a = "1", b = ["x", 2]));
        assert!(args.take("a", &mut diagnostics).and_then(|a| a.integer::<u8>(&mut diagnostics)).is_none());
        assert!(args.take("b", &mut diagnostics).and_then(|b| b.strings(&mut diagnostics)).is_none());
        assert_eq!(
            diagnostics.messages(),
            [
                "`a` takes an integer literal\n\nhelp: write `a = 16`",
                "`b` takes a string literal\n\nhelp: write `b = \"…\"`",
            ]
        );
    }

    #[test]
    fn integers_keep_their_type_range() {
        let mut diagnostics = Diagnostics::default();
        let mut args = args(quote!(a = 18446744073709551615, b = 5));
        assert!(args.take("a", &mut diagnostics).and_then(|a| a.integer::<i64>(&mut diagnostics)).is_none());
        assert_eq!(
            diagnostics.messages(),
            ["`a = 18446744073709551615` does not fit in `i64`\n\nhelp: write a smaller number"]
        );
        let b = args.take("b", &mut diagnostics).and_then(|b| b.integer::<usize>(&mut diagnostics));
        assert_eq!(b.map(|b| b.value), Some(5));
    }

    #[test]
    fn choices() {
        let mut diagnostics = Diagnostics::default();
        let mut args = args(quote!(a = "blue", b = "green"));
        let a = args.take("a", &mut diagnostics).and_then(|a| a.choice::<Color>(&mut diagnostics));
        assert_eq!(a.map(|a| a.value), Some(Color::Blue));
        assert!(args.take("b", &mut diagnostics).and_then(|b| b.choice::<Color>(&mut diagnostics)).is_none());
        assert_eq!(
            diagnostics.messages(),
            ["unknown `b` value `green`\n\nhelp: expected one of: `\"red\"`, `\"blue\"`"]
        );
        let _ = Color::Red;
    }

    #[test]
    fn durations_all_or_none() {
        let mut diagnostics = Diagnostics::default();
        let mut args = args(quote!(a = ["1s", "250ms"], b = ["1s", "2x"]));
        let a = args.take("a", &mut diagnostics).and_then(|a| a.durations(&mut diagnostics));
        let nanos: Option<Vec<u64>> = a.map(|a| a.iter().map(|d| d.value.as_nanos()).collect());
        assert_eq!(nanos, Some(vec![1_000_000_000, 250_000_000]));
        assert!(args.take("b", &mut diagnostics).and_then(|b| b.durations(&mut diagnostics)).is_none());
        assert_eq!(diagnostics.messages().len(), 1);
        assert!(diagnostics.messages()[0].starts_with("invalid duration `2x`: unknown unit `x`"));
    }
}
