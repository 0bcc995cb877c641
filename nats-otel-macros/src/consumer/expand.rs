//! Expand: a [`Consumer`] as the runtime's `JetStreamConsumer` builder chain.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;

use crate::consumer::model::{
    AckMode, Consumer, DEFAULT_BATCH_WAIT, DeadLetterRoute, Deliver, SettleRecord, StreamRef,
};

impl Consumer {
    /// `Endpoint::Consume(JetStreamConsumer::new(stream, durable)…)` (or
    /// `::ordered(stream)`), one
    /// builder call per option given (defaults are the runtime's).
    pub(crate) fn endpoint(&self, name: &Ident) -> Option<TokenStream> {
        let private = self.options.private();
        let (stream, declared) = match self.stream.as_ref()? {
            StreamRef::Name(name) => (quote!(#name), None),
            StreamRef::Declared(ty) => (
                quote!(<#ty as #private::NatsStream>::NAME),
                Some(quote!(.declared_stream(<#ty as #private::NatsStream>::config()))),
            ),
        };
        let consumer = match (self.ordered, &self.durable) {
            (Some(_), _) => quote!(#private::JetStreamConsumer::ordered(#stream)),
            (None, Some(durable)) => quote!(#private::JetStreamConsumer::new(#stream, #durable)),
            (None, None) => return None,
        };
        let filters = self.filters.iter().map(|f| {
            let pattern = &f.pattern;
            quote!(.filter(#pattern))
        });
        let message_filter = match &self.options.message {
            Some(ty) if self.filters.is_empty() => quote! {
                .filter(<#ty as #private::NatsMessage>::PATTERN)
                .template(<#ty as #private::NatsMessage>::TEMPLATE)
            },
            _ => TokenStream::new(),
        };
        let template = match self.filters.as_slice() {
            [only] => only.template_call(),
            _ => TokenStream::new(),
        };
        let deliver = self.deliver.map(|d| {
            let variant = match d.value {
                Deliver::All => quote!(All),
                Deliver::New => quote!(New),
                Deliver::Last => quote!(Last),
                Deliver::LastPerSubject => quote!(LastPerSubject),
            };
            quote!(.deliver(#private::Deliver::#variant))
        });
        let ack_wait = self.ack_wait.map(|d| {
            let nanos = d.value.as_nanos();
            quote!(.ack_wait(#private::Duration::from_nanos(#nanos)))
        });
        let max_deliver = self.max_deliver.map(|n| {
            let n = n.value;
            quote!(.max_deliver(#n))
        });
        let backoff = self.backoff.as_ref().map(|backoff| {
            let nanos = backoff.delays.iter().map(|d| d.value.as_nanos());
            quote!(.backoff([#(#private::Duration::from_nanos(#nanos)),*]))
        });
        let max_ack_pending = self.max_ack_pending.map(|n| {
            let n = n.value;
            quote!(.max_ack_pending(#n))
        });
        let concurrency = self.concurrency.map(|n| {
            let n = n.value;
            quote!(.concurrency(#n))
        });
        let batch = self.batch.map(|n| {
            let n = n.value;
            quote!(.batch(#n))
        });
        let batches = self.batch_size.map(|size| {
            let size = size.value;
            let nanos = self.batch_wait.map_or(DEFAULT_BATCH_WAIT.as_nanos() as u64, |d| d.value.as_nanos());
            quote!(.batches(#size, #private::Duration::from_nanos(#nanos)))
        });
        let ack = self
            .ack
            .filter(|a| a.value == AckMode::Confirmed)
            .map(|_| quote!(.ack(#private::AckMode::Confirmed)));
        let create = self.create.map(|c| {
            let c = c.value;
            quote!(.create(#c))
        });
        let dead_letter = self.dead_letter.as_ref().map(|d| quote!(.dead_letter(#d)));
        let dead_letter_route = self
            .dead_letter_route
            .filter(|r| r.value == DeadLetterRoute::Core)
            .map(|_| quote!(.dead_letter_route(#private::DeadLetterRoute::Core)));
        let settle = self
            .settle
            .filter(|s| s.value == SettleRecord::Event)
            .map(|_| quote!(.settle_record(#private::SettleRecord::Event)));
        let shared = self.options.builder_calls();
        Some(quote! {
            #private::Endpoint::Consume(
                #consumer
                    #declared
                    #(#filters)* #message_filter #template #deliver #ack_wait #max_deliver #backoff #max_ack_pending #concurrency
                    #batch #batches #ack #create #dead_letter #dead_letter_route #settle #shared
                    .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
            )
        })
    }

    /// For a stream declared as a type: each filter (or the message type's
    /// pattern) must lie within its subjects, checked by the compiler and
    /// spanned at the filter.
    pub(crate) fn stream_checks(&self) -> TokenStream {
        let Some(StreamRef::Declared(ty)) = &self.stream else { return TokenStream::new() };
        let krate = &self.options.krate;
        let shown = quote!(#ty).to_string().replace(' ', "");
        let check = |pattern: TokenStream, shown_filter: String, span: proc_macro2::Span| {
            let failure = format!(
                "the filter `{shown_filter}` lies outside the subjects of stream `{shown}`: \
                 the consumer would never receive those messages; \
                 use a filter within `{shown}`'s subjects, or add a subject to the stream"
            );
            let call = quote_spanned! {span=> __nats_otel_assert_in_stream(__NATS_OTEL_SUBJECTS, #pattern, #failure) };
            quote! {
                const _: () = {
                    use #krate::__private::assert_in_stream as __nats_otel_assert_in_stream;
                    const __NATS_OTEL_SUBJECTS: &[&str] = <#ty as #krate::__private::NatsStream>::SUBJECTS;
                    #call
                };
            }
        };
        let mut checks: TokenStream = self
            .filters
            .iter()
            .map(|f| {
                let pattern = &f.pattern;
                check(quote!(#pattern), f.template.clone().unwrap_or_else(|| f.pattern.clone()), f.span)
            })
            .collect();
        if let (Some(message), true) = (&self.options.message, self.filters.is_empty()) {
            let shown_message = quote!(#message).to_string().replace(' ', "");
            checks.extend(check(
                quote!(<#message as #krate::__private::NatsMessage>::PATTERN),
                format!("{shown_message}::PATTERN"),
                syn::spanned::Spanned::span(message),
            ));
        }
        checks
    }
}
