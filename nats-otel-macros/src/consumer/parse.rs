//! Parse: `#[jetstream_consumer(...)]` arguments into the [`Consumer`] model.

use syn::spanned::Spanned as _;
use syn::{ItemFn, LitStr};

use crate::args::Args;
use crate::consumer::model::{Backoff, Consumer, StreamRef};
use crate::diagnostics::Diagnostics;
use crate::handler::options::HandlerOptions;
use crate::handler::subject::HandlerSubject;
use crate::spanned::Spanned;

impl Consumer {
    pub(crate) fn parse(mut args: Args, item: &ItemFn, diagnostics: &mut Diagnostics) -> Self {
        for extra in std::mem::take(&mut args.positional) {
            diagnostics.error_with_help(
                extra.span(),
                "unexpected string",
                "options are `key = value`, e.g. `stream = \"ORDERS\"`",
            );
        }
        let stream = match args.take("stream", diagnostics) {
            Some(arg) => match &arg.value {
                syn::Expr::Path(path) if path.qself.is_none() => Some(StreamRef::Declared(path.path.clone())),
                _ => arg.string(diagnostics).map(StreamRef::Name),
            },
            None => {
                diagnostics.error_with_help(
                    item.sig.ident.span(),
                    "`#[jetstream_consumer]` needs `stream`",
                    "add `stream = \"ORDERS\"`, or `stream = Orders` for a type deriving `NatsStream`",
                );
                None
            }
        };
        let ordered = args
            .take("ordered", diagnostics)
            .and_then(|arg| arg.boolean(diagnostics).filter(|on| *on).map(|_| arg.key.span()));
        let durable = match ordered {
            // An ordered consumer has none: `check` reports one given.
            Some(_) => args.take("durable", diagnostics).and_then(|arg| arg.string(diagnostics)),
            None => required_string(&mut args, "durable", "billing", item, diagnostics),
        };
        let filters = args.take("filter", diagnostics).and_then(|arg| arg.strings(diagnostics));
        let filters =
            filters.iter().flatten().filter_map(|lit| HandlerSubject::parse(lit, diagnostics)).collect();
        let message = args.take("message", diagnostics).and_then(|arg| arg.type_path(diagnostics));
        let deliver = args.take("deliver", diagnostics).and_then(|arg| arg.choice(diagnostics));
        let ack_wait = args.take("ack_wait", diagnostics).and_then(|arg| arg.duration(diagnostics));
        let max_deliver = args.take("max_deliver", diagnostics).and_then(|arg| arg.integer(diagnostics));
        let backoff = args.take("backoff", diagnostics).and_then(|arg| {
            let delays = arg.durations(diagnostics)?;
            Some(Backoff { span: arg.key.span(), delays })
        });
        let max_ack_pending =
            args.take("max_ack_pending", diagnostics).and_then(|arg| arg.integer(diagnostics));
        let concurrency = args.take("concurrency", diagnostics).and_then(|arg| arg.integer(diagnostics));
        let batch = args.take("batch", diagnostics).and_then(|arg| arg.integer(diagnostics));
        let batch_size = args.take("batch_size", diagnostics).and_then(|arg| arg.integer(diagnostics));
        let batch_wait = args.take("batch_wait", diagnostics).and_then(|arg| arg.duration(diagnostics));
        let ack = args.take("ack", diagnostics).and_then(|arg| arg.choice(diagnostics));
        let create = args
            .take("create", diagnostics)
            .and_then(|arg| arg.boolean(diagnostics).map(|on| Spanned::new(on, arg.value.span())));
        let dead_letter = args.take("dead_letter", diagnostics).and_then(|arg| arg.string(diagnostics));
        let dead_letter_route =
            args.take("dead_letter_route", diagnostics).and_then(|arg| arg.choice(diagnostics));
        let settle = args.take("settle", diagnostics).and_then(|arg| arg.choice(diagnostics));
        let options = HandlerOptions::parse(message, &mut args, diagnostics);
        args.finish(diagnostics);
        Consumer {
            stream,
            durable,
            ordered,
            filters,
            deliver,
            ack_wait,
            max_deliver,
            backoff,
            max_ack_pending,
            concurrency,
            batch,
            batch_size,
            batch_wait,
            ack,
            create,
            dead_letter,
            dead_letter_route,
            settle,
            options,
        }
    }
}

/// A string option the consumer cannot do without; missing, it is reported at
/// the handler's name.
fn required_string(
    args: &mut Args,
    key: &'static str,
    example: &str,
    item: &ItemFn,
    diagnostics: &mut Diagnostics,
) -> Option<LitStr> {
    let Some(arg) = args.take(key, diagnostics) else {
        diagnostics.error_with_help(
            item.sig.ident.span(),
            format!("`#[jetstream_consumer]` needs `{key}`"),
            format!("add `{key} = \"{example}\"`"),
        );
        return None;
    };
    arg.string(diagnostics)
}
