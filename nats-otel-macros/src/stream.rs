//! `#[derive(NatsStream)]`: a stream declared in code, as parse → model →
//! check → expand. Its name and subjects become constants, so consumers naming
//! the type are checked against them at compile time.

use nats_otel_rules::Usage;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::args::{Args, Choice};
use crate::diagnostics::{Diagnostics, subspan};
use crate::duration::Duration;
use crate::spanned::Spanned;

const OPTIONS: &[&str] = &[
    "name",
    "subjects",
    "storage",
    "retention",
    "replicas",
    "max_age",
    "max_messages",
    "max_bytes",
    "duplicate_window",
    "crate",
];

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut diagnostics = Diagnostics::default();
    let model = Stream::parse(&input, &mut diagnostics);
    model.check(&mut diagnostics);
    let expanded = model.expand(&input);
    let errors = diagnostics.to_compile_errors();
    quote!(#errors #expanded)
}

/// The typed model of `#[nats_stream(...)]`.
struct Stream {
    name: Option<LitStr>,
    subjects: Vec<LitStr>,
    storage: Option<Spanned<Storage>>,
    retention: Option<Spanned<Retention>>,
    replicas: Option<Spanned<usize>>,
    max_age: Option<Spanned<Duration>>,
    max_messages: Option<Spanned<i64>>,
    max_bytes: Option<Spanned<i64>>,
    duplicate_window: Option<Spanned<Duration>>,
    krate: syn::Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    File,
    Memory,
}

impl Choice for Storage {
    const CHOICES: &'static [(&'static str, Self)] = &[("file", Storage::File), ("memory", Storage::Memory)];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retention {
    Limits,
    Interest,
    WorkQueue,
}

impl Choice for Retention {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("limits", Retention::Limits),
        ("interest", Retention::Interest),
        ("work_queue", Retention::WorkQueue),
    ];
}

impl Stream {
    fn parse(input: &DeriveInput, diagnostics: &mut Diagnostics) -> Self {
        let mut model = Stream {
            name: None,
            subjects: Vec::new(),
            storage: None,
            retention: None,
            replicas: None,
            max_age: None,
            max_messages: None,
            max_bytes: None,
            duplicate_window: None,
            krate: syn::parse_quote!(::nats_otel_runtime),
        };
        let attrs: Vec<_> = input.attrs.iter().filter(|a| a.path().is_ident("nats_stream")).collect();
        let Some(attr) = attrs.first() else {
            diagnostics.error_with_help(
                input.ident.span(),
                "`#[derive(NatsStream)]` needs `#[nats_stream(name = \"…\", subjects = [\"…\"])]`",
                "add `#[nats_stream(name = \"ORDERS\", subjects = [\"orders.>\"])]`",
            );
            return model;
        };
        for extra in &attrs[1..] {
            diagnostics.error_with_help(
                extra.path().get_ident().map_or_else(|| input.ident.span(), |i| i.span()),
                "a second `#[nats_stream]`",
                "give every option in one",
            );
        }
        let tokens = match attr.meta.require_list() {
            Ok(list) => list.tokens.clone(),
            Err(e) => {
                diagnostics.push(e);
                return model;
            }
        };
        let mut args = match Args::parse(tokens, OPTIONS) {
            Ok(args) => args,
            Err(e) => {
                diagnostics.push(e);
                return model;
            }
        };
        model.name = match args.take("name", diagnostics) {
            Some(arg) => arg.string(diagnostics),
            None => {
                diagnostics.error_with_help(
                    attr.path().segments[0].ident.span(),
                    "`#[nats_stream]` needs `name`",
                    "add `name = \"ORDERS\"`",
                );
                None
            }
        };
        model.subjects = match args.take("subjects", diagnostics) {
            Some(arg) => arg.strings(diagnostics).unwrap_or_default(),
            None => {
                diagnostics.error_with_help(
                    attr.path().segments[0].ident.span(),
                    "`#[nats_stream]` needs `subjects`",
                    "add `subjects = [\"orders.>\"]`: a consumer's filters are checked against them",
                );
                Vec::new()
            }
        };
        model.storage = args.take("storage", diagnostics).and_then(|arg| arg.choice(diagnostics));
        model.retention = args.take("retention", diagnostics).and_then(|arg| arg.choice(diagnostics));
        model.replicas = args.take("replicas", diagnostics).and_then(|arg| arg.integer(diagnostics));
        model.max_age = args.take("max_age", diagnostics).and_then(|arg| arg.duration(diagnostics));
        model.max_messages = args.take("max_messages", diagnostics).and_then(|arg| arg.integer(diagnostics));
        model.max_bytes = args.take("max_bytes", diagnostics).and_then(|arg| arg.integer(diagnostics));
        model.duplicate_window =
            args.take("duplicate_window", diagnostics).and_then(|arg| arg.duration(diagnostics));
        if let Some(path) = args.take("crate", diagnostics).and_then(|arg| arg.path(diagnostics)) {
            model.krate = path;
        }
        args.finish(diagnostics);
        model
    }

    fn check(&self, diagnostics: &mut Diagnostics) {
        if let Some(name) = &self.name
            && let Err(e) = nats_otel_rules::validate_name(&name.value())
        {
            diagnostics.error_with_help(
                subspan(name, e.range.clone()),
                format!("name: {}", e.message()),
                e.help(),
            );
        }
        for subject in &self.subjects {
            if let Err(e) = nats_otel_rules::validate(&subject.value(), Usage::Subscribe) {
                diagnostics.error_with_help(subspan(subject, e.range.clone()), e.message(), e.help());
            }
        }
        if let Some(replicas) = self.replicas
            && !(1..=5).contains(&replicas.value)
        {
            diagnostics.error_with_help(
                replicas.span,
                format!("{} replicas: a stream has 1 to 5", replicas.value),
                "use 1 (default), 3 or 5",
            );
        }
    }

    fn expand(&self, input: &DeriveInput) -> TokenStream {
        let Some(name) = &self.name else { return TokenStream::new() };
        let ident = &input.ident;
        let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
        let krate = &self.krate;
        let private = quote!(#krate::__private);
        let subjects = &self.subjects;
        let storage = self.storage.map(|s| match s.value {
            Storage::File => quote!(config.storage = #private::StorageType::File;),
            Storage::Memory => quote!(config.storage = #private::StorageType::Memory;),
        });
        let retention = self.retention.map(|r| match r.value {
            Retention::Limits => quote!(config.retention = #private::RetentionPolicy::Limits;),
            Retention::Interest => quote!(config.retention = #private::RetentionPolicy::Interest;),
            Retention::WorkQueue => quote!(config.retention = #private::RetentionPolicy::WorkQueue;),
        });
        let replicas = self.replicas.map(|n| {
            let n = n.value;
            quote!(config.num_replicas = #n;)
        });
        let nanos = |field: TokenStream, d: Option<Spanned<Duration>>| {
            d.map(|d| {
                let nanos = d.value.as_nanos();
                quote!(config.#field = #private::Duration::from_nanos(#nanos);)
            })
        };
        let max_age = nanos(quote!(max_age), self.max_age);
        let duplicate_window = nanos(quote!(duplicate_window), self.duplicate_window);
        let max_messages = self.max_messages.map(|n| {
            let n = n.value;
            quote!(config.max_messages = #n;)
        });
        let max_bytes = self.max_bytes.map(|n| {
            let n = n.value;
            quote!(config.max_bytes = #n;)
        });
        quote! {
            impl #impl_generics #private::NatsStream for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                const SUBJECTS: &'static [&'static str] = &[#(#subjects),*];

                fn config() -> #private::StreamConfig {
                    let mut config = #private::StreamConfig {
                        name: ::std::string::ToString::to_string(#name),
                        subjects: [#(#subjects),*].iter().map(::std::string::ToString::to_string).collect(),
                        ..::core::default::Default::default()
                    };
                    #storage #retention #replicas #max_age #duplicate_window #max_messages #max_bytes
                    config
                }
            }
        }
    }
}
