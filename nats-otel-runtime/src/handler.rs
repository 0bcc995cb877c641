//! The `Handler` trait: async functions over extractors, as axum does for HTTP.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{FromMessage, Incoming, IntoOutcome, Rejection};

/// An async function whose arguments are extractors and whose output is an
/// [`IntoOutcome`]: `()`, a reply, or `Result<reply, error>`.
///
/// Implemented for every `Fn(T1, …, Tn) -> impl Future` (up to 16 arguments) whose
/// arguments implement [`FromMessage<S>`], so the runtime needs no macro:
///
/// ```
/// use nats_otel_runtime::{Json, Service};
/// # #[derive(serde::Deserialize)] struct Order { id: u64 }
/// async fn on_order(Json(order): Json<Order>) {}
///
/// # async fn demo(client: async_nats::Client) {
/// let service = Service::new(client).subscribe("orders.*", on_order);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a nats-otel handler",
    label = "not an async fn over extractors",
    note = "a handler is an `async fn` whose arguments implement `FromMessage` and whose return type implements `IntoOutcome`",
    note = "put `#[nats_subscribe(..)]` on the function for an error that points at the offending argument"
)]
pub trait Handler<T, S>: Clone + Send + Sync + Sized + 'static {
    /// The future the user's function returns.
    type Future: Future<Output = Self::Output> + Send + 'static;
    /// What the function returns.
    type Output: IntoOutcome;
    /// Whether one of the arguments carries the trace context in the payload.
    const TRACE_CONTEXT_IN_BODY: bool;
    /// Whether one of the arguments settles JetStream messages itself.
    const SETTLES_ITSELF: bool;

    /// Extracts the arguments and calls the function.
    fn call(&self, incoming: &Incoming, state: &S) -> Result<Self::Future, Rejection>;
}

macro_rules! impl_handler {
    ($($ty:ident),*) => {
        impl<F, Fut, S, $($ty,)*> Handler<($($ty,)*), S> for F
        where
            F: Fn($($ty),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutcome,
            $($ty: FromMessage<S>,)*
        {
            type Future = Fut;
            type Output = Fut::Output;
            const TRACE_CONTEXT_IN_BODY: bool = false $(|| <$ty as FromMessage<S>>::TRACE_CONTEXT_IN_BODY)*;
            const SETTLES_ITSELF: bool = false $(|| <$ty as FromMessage<S>>::SETTLES_ITSELF)*;

            #[allow(non_snake_case, unused_variables)]
            fn call(&self, incoming: &Incoming, state: &S) -> Result<Fut, Rejection> {
                $(let $ty = $ty::from_message(incoming, state)?;)*
                Ok(self($($ty),*))
            }
        }
    };
}

impl_handler!();
impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15, T16);

/// The static description of a handler declared with a macro: its subscription
/// and options. Implemented by the marker type the macros emit.
pub trait Descriptor: 'static {
    /// Where and how the handler subscribes.
    fn endpoint() -> crate::Endpoint;
}

pin_project_lite::pin_project! {
    /// The future a macro-declared handler returns: the user's future, unchanged,
    /// tagged with the handler's [`Descriptor`] `D`.
    ///
    /// Awaiting it gives exactly what the user's `async fn` returns, so the function
    /// stays callable as written (in unit tests, say); the tag is how
    /// [`Service::handler`](crate::Service::handler) finds the subject and options
    /// from the function alone.
    pub struct Declared<F, D> {
        #[pin]
        inner: F,
        descriptor: PhantomData<fn() -> D>,
    }
}

impl<F, D> Declared<F, D> {
    /// Tags `inner` with `D`.
    pub fn new(inner: F) -> Self {
        Self { inner, descriptor: PhantomData }
    }
}

impl<F: Future, D> Future for Declared<F, D> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F, D> std::fmt::Debug for Declared<F, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declared").field("descriptor", &std::any::type_name::<D>()).finish()
    }
}

/// Implemented by the futures of macro-declared handlers; gives their [`Descriptor`].
#[diagnostic::on_unimplemented(
    message = "this handler was not declared with `#[nats_subscribe]` or `#[jetstream_consumer]`",
    label = "`Service::handler` needs a declared handler",
    note = "use `Service::subscribe(\"subject\", handler)` to register an undecorated async fn"
)]
pub trait DeclaredFuture {
    /// The handler's description.
    type Descriptor: Descriptor;
}

impl<F, D: Descriptor> DeclaredFuture for Declared<F, D> {
    type Descriptor = D;
}
