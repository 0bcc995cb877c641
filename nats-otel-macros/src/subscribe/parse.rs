//! Parse: `#[nats_subscribe(...)]` arguments into the [`Subscribe`] model.

use syn::ItemFn;

use crate::args::Args;
use crate::diagnostics::Diagnostics;
use crate::handler::options::HandlerOptions;
use crate::handler::subject::HandlerSubject;
use crate::subscribe::model::Subscribe;

impl Subscribe {
    pub(crate) fn parse(mut args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Self {
        let named_subject = args.take("subject", diagnostics).and_then(|arg| arg.string(diagnostics));
        let message = args.take("message", diagnostics).and_then(|arg| arg.type_path(diagnostics));
        let mut positional = std::mem::take(&mut args.positional).into_iter();
        let subject = match (positional.next(), named_subject) {
            (Some(lit), None) | (None, Some(lit)) => Some(lit),
            (Some(_), Some(named)) => {
                diagnostics.error_with_help(
                    named.span(),
                    "the subject is given twice",
                    "keep either the leading string or `subject = \"…\"`",
                );
                None
            }
            (None, None) if message.is_some() => None,
            (None, None) => {
                diagnostics.error_with_help(
                    item.sig.ident.span(),
                    "`#[nats_subscribe]` needs a subject",
                    "write `#[nats_subscribe(\"orders.*\")]`, `#[nats_subscribe(subject = \"orders.*\")]` or `#[nats_subscribe(message = OrderCreated)]`",
                );
                None
            }
        };
        for extra in positional {
            diagnostics.error_with_help(
                extra.span(),
                "unexpected string",
                "options are `key = value`, e.g. `queue = \"workers\"`",
            );
        }
        let subject = subject.and_then(|lit| HandlerSubject::parse(&lit, diagnostics));
        let queue = args.take("queue", diagnostics).and_then(|arg| arg.string(diagnostics));
        let concurrency = args.take("concurrency", diagnostics).and_then(|arg| arg.integer(diagnostics));
        let options = HandlerOptions::parse(message, &mut args, diagnostics);
        args.finish(diagnostics);
        Subscribe { subject, queue, concurrency, options }
    }
}
