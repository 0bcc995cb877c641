//! The typed model of `#[nats_subscribe(...)]`.

use syn::LitStr;

use crate::handler::options::HandlerOptions;
use crate::handler::subject::HandlerSubject;
use crate::spanned::Spanned;

/// A core NATS subscription handler.
pub(crate) struct Subscribe {
    /// The leading string or `subject = "…"`; without it, `message`'s pattern.
    pub(crate) subject: Option<HandlerSubject>,
    /// `queue = "…"`: the queue group.
    pub(crate) queue: Option<LitStr>,
    pub(crate) concurrency: Option<Spanned<usize>>,
    /// `message`, `trace`, the span capture and `crate`.
    pub(crate) options: HandlerOptions,
}
