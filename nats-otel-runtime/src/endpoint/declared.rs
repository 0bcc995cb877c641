//! What the macros declare about a handler: its endpoint, found from the
//! function alone by [`NatsService::handler`](crate::NatsService::handler).

use crate::handler::DeclaredArgs;
use crate::handler::shape::{HandlerShape, Schemas};

/// The static description of a handler declared with a macro: its subscription
/// and options. Implemented by the marker type the macros emit.
pub trait Descriptor: 'static {
    /// Where and how the handler subscribes.
    fn endpoint() -> super::Endpoint;

    /// What the handler reads and answers, for the service's contract.
    fn shape(schemas: &mut Schemas) -> HandlerShape {
        let _ = schemas;
        HandlerShape::default()
    }
}

/// The `T` of [`Handler<T, S>`](crate::Handler) for macro-declared handlers: their descriptor `D`
/// and argument tuple `Args`.
#[diagnostic::on_unimplemented(
    message = "this handler was not declared with `#[nats_subscribe]` or `#[jetstream_consumer]`",
    label = "`NatsService::handler` needs a declared handler",
    note = "use `NatsService::subscribe(\"subject\", handler)` to register an undecorated async fn"
)]
pub trait DeclaredHandler {
    /// The handler's description.
    type Descriptor: Descriptor;
}

impl<D: Descriptor, Args> DeclaredHandler for DeclaredArgs<D, Args> {
    type Descriptor = D;
}
