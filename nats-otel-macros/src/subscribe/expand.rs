//! Expand: a [`Subscribe`] as the runtime's `Subscription` builder chain.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use crate::subscribe::model::Subscribe;

impl Subscribe {
    /// `Endpoint::Subscribe(Subscription::new(subject)…)`, one builder call per
    /// option given; `None` without a subject or a `message` to take it from.
    pub(crate) fn endpoint(&self, name: &Ident) -> Option<TokenStream> {
        let private = self.options.private();
        let (subject, template) = match (&self.subject, &self.options.message) {
            (Some(subject), _) => {
                let pattern = &subject.pattern;
                (quote!(#pattern), subject.template_call())
            }
            (None, Some(ty)) => (
                quote!(<#ty as #private::NatsMessage>::PATTERN),
                quote!(.template(<#ty as #private::NatsMessage>::TEMPLATE)),
            ),
            (None, None) => return None,
        };
        let queue = self.queue.as_ref().map(|q| quote!(.queue(#q)));
        let concurrency = self.concurrency.map(|n| {
            let n = n.value;
            quote!(.concurrency(#n))
        });
        let shared = self.options.builder_calls();
        Some(quote! {
            #private::Endpoint::Subscribe(
                #private::Subscription::new(#subject)
                    #template #queue #concurrency #shared
                    .name(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)))
            )
        })
    }
}
