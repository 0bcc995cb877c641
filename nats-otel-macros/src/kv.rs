//! `#[kv_watch]`: a handler of a key-value bucket's changes, as parse → model
//! → check → expand. A watch is an ordered consumer on the bucket's stream, so
//! it expands to the runtime's `JetStreamConsumer::kv_watch`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, ItemFn, LitStr};

use crate::args::{Args, Choice};
use crate::diagnostics::{Diagnostics, subspan};
use crate::handler::options::HandlerOptions;
use crate::handler::subject::{Capture, HandlerSubject};
use crate::handler::{HandlerAttribute, expand_attribute};
use crate::spanned::Spanned;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute::<Watch>(args, item)
}

/// The typed model of `#[kv_watch(...)]`.
pub(crate) struct Watch {
    bucket: Option<LitStr>,
    /// `None`: every key (`>`).
    key: Option<LitStr>,
    history: Option<Spanned<History>>,
    options: HandlerOptions,
}

/// Where the watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum History {
    Latest,
    All,
    UpdatesOnly,
}

impl Choice for History {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("latest", History::Latest), ("all", History::All), ("updates_only", History::UpdatesOnly)];
}

impl HandlerAttribute for Watch {
    const NAME: &'static str = "kv_watch";
    const OPTIONS: &'static [&'static str] =
        &["bucket", "key", "history", "trace", "capture_headers", "capture_body", "crate"];

    fn parse(mut args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Self {
        for extra in std::mem::take(&mut args.positional) {
            diagnostics.error_with_help(
                extra.span(),
                "unexpected string",
                "options are `key = value`, e.g. `bucket = \"config\"`",
            );
        }
        let bucket = match args.take("bucket", diagnostics) {
            Some(arg) => arg.string(diagnostics),
            None => {
                diagnostics.error_with_help(
                    item.sig.ident.span(),
                    "`#[kv_watch]` needs `bucket`",
                    "add `bucket = \"config\"`",
                );
                None
            }
        };
        let key = args.take("key", diagnostics).and_then(|arg| arg.string(diagnostics));
        let history = args.take("history", diagnostics).and_then(|arg| arg.choice(diagnostics));
        let options = HandlerOptions::parse(None, &mut args, diagnostics);
        args.finish(diagnostics);
        Watch { bucket, key, history, options }
    }

    fn check(&self, diagnostics: &mut Diagnostics) {
        if let Some(bucket) = &self.bucket {
            check_bucket(bucket, diagnostics);
        }
        if let Some(key) = &self.key
            && let Some(subject) = HandlerSubject::parse(key, diagnostics)
        {
            for capture in &subject.captures {
                diagnostics.error_with_help(
                    capture.span,
                    "a watched key has no captures",
                    "use `*` or `>`, and read the key from `KvEntry::key`",
                );
            }
        }
        self.options.check(diagnostics);
    }

    fn options(&self) -> &HandlerOptions {
        &self.options
    }

    fn subjects(&self) -> &[HandlerSubject] {
        &[]
    }

    fn captures(&self) -> &[Capture] {
        &[]
    }

    fn endpoint(&self, name: &Ident) -> Option<TokenStream> {
        let bucket = self.bucket.as_ref()?;
        let key = self.key.as_ref().map_or_else(|| quote!(">"), |key| quote!(#key));
        let private = self.options.private();
        let history = match self.history.map_or(History::Latest, |h| h.value) {
            History::Latest => quote!(Latest),
            History::All => quote!(All),
            History::UpdatesOnly => quote!(UpdatesOnly),
        };
        let shared = self.options.builder_calls();
        Some(quote! {
            #private::Endpoint::Consume(
                #private::JetStreamConsumer::kv_watch(#bucket, #key, #private::KvHistory::#history)
                    #shared
                    .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
            )
        })
    }
}

/// A bucket name: letters, digits, `-` and `_` (ADR-8).
fn check_bucket(bucket: &LitStr, diagnostics: &mut Diagnostics) {
    let value = bucket.value();
    if value.is_empty() {
        diagnostics.error_with_help(
            bucket.span(),
            "an empty bucket name",
            "name the bucket, e.g. `\"config\"`",
        );
        return;
    }
    if let Some((at, c)) =
        value.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        let span: Span = subspan(bucket, at..at + c.len_utf8());
        diagnostics.error_with_help(
            span,
            format!("`{c}` is not allowed in a bucket name"),
            "bucket names take letters, digits, `-` and `_`",
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use quote::quote;
    use syn::parse_quote;

    use super::*;

    fn errors(args: TokenStream) -> (Watch, Vec<String>) {
        let mut diagnostics = Diagnostics::default();
        let args = Args::parse(args, Watch::OPTIONS).unwrap_or_else(|e| panic!("{e}"));
        let item: ItemFn = parse_quote!(
            async fn on_change() {}
        );
        let watch = Watch::parse(args, &item, &mut diagnostics);
        watch.check(&mut diagnostics);
        let lines =
            diagnostics.messages().iter().filter_map(|m| m.lines().next().map(str::to_owned)).collect();
        (watch, lines)
    }

    #[test]
    fn expands_to_the_runtime_watch() {
        let (watch, errors) = errors(quote!(bucket = "config", key = "tenants.>", history = "all"));
        assert!(errors.is_empty(), "{errors:?}");
        let ident: Ident = parse_quote!(on_change);
        let private = quote!(::nats_otel_runtime::__private);
        let expected = quote! {
            #private::Endpoint::Consume(
                #private::JetStreamConsumer::kv_watch("config", "tenants.>", #private::KvHistory::All)
                    .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(on_change)))
            )
        };
        assert_eq!(watch.endpoint(&ident).map(|t| t.to_string()), Some(expected.to_string()));
    }

    #[test]
    fn every_key_and_the_latest_entries_by_default() {
        let (watch, errors) = errors(quote!(bucket = "config"));
        assert!(errors.is_empty(), "{errors:?}");
        let ident: Ident = parse_quote!(on_change);
        let text = watch.endpoint(&ident).map(|t| t.to_string()).unwrap_or_default();
        assert!(
            text.contains("\"config\" , \">\" , :: nats_otel_runtime :: __private :: KvHistory :: Latest"),
            "{text}"
        );
    }

    #[test]
    fn reports_bad_buckets_keys_and_choices() {
        let (_, found) = errors(quote!(bucket = "con.fig", key = "tenants.{id}", history = "newest"));
        assert!(found.iter().any(|e| e.contains("`.` is not allowed in a bucket name")), "{found:?}");
        assert!(found.iter().any(|e| e.contains("a watched key has no captures")), "{found:?}");
        assert!(found.iter().any(|e| e.contains("newest")), "{found:?}");
        let (watch, found) = errors(quote!(key = "a.b"));
        assert!(found.iter().any(|e| e.contains("needs `bucket`")), "{found:?}");
        assert!(watch.endpoint(&parse_quote!(x)).is_none());
    }
}
