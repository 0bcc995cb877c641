//! Expand: a [`Consumer`] as the runtime's `JetStreamConsumer` builder chain.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use crate::consumer::model::{AckMode, Consumer, DeadLetterRoute, Deliver, SettleRecord};

impl Consumer {
    /// `Endpoint::Consume(JetStreamConsumer::new(stream, durable)…)` (or
    /// `::ordered(stream)`), one
    /// builder call per option given (defaults are the runtime's).
    pub(crate) fn endpoint(&self, name: &Ident) -> Option<TokenStream> {
        let stream = self.stream.as_ref()?;
        let private = self.options.private();
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
                    #(#filters)* #message_filter #template #deliver #ack_wait #max_deliver #backoff #max_ack_pending #concurrency
                    #batch #ack #create #dead_letter #dead_letter_route #settle #shared
                    .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
            )
        })
    }
}
