//! What a handler is and what it sees: the `Handler` trait (async functions over
//! extractors, as axum does for HTTP), the message as extractors read it, the
//! extractors, replies and failures, typed messages and subject tokens.
//!
//! A new extractor goes in [`extract`] (or [`jetstream`] for JetStream-only
//! ones), a new reply type in [`reply`].

pub(crate) mod batch;
pub mod extract;
mod incoming;
pub(crate) mod jetstream;
pub(crate) mod kv;
pub mod message;
pub(crate) mod reply;
pub(crate) mod settlement;
pub mod shape;
pub mod subject_tokens;

use std::future::Future;
use std::marker::PhantomData;

pub use batch::{Batch, BatchArgs, BatchArgument, BatchItem, BatchOutcome, ItemId};
pub use extract::{Envelope, Extractor, FromMessage, FromRef, Json, Rejection, State};
pub use incoming::Incoming;
pub use jetstream::{Acker, JetStreamInfo};
pub use reply::{Failure, FailureKind, HandlerError, IntoOutcome, IntoReply, Outcome, Reply, ServiceError};
pub use settlement::{Permanent, Retry, RetryAfter, Settlement};

/// An async function whose arguments are extractors and whose output is an
/// [`IntoOutcome`]: `()`, a reply, or `Result<reply, error>`.
///
/// Implemented for every `Fn(T1, …, Tn) -> impl Future` (up to 16 arguments) whose
/// arguments implement [`FromMessage<S>`], so the runtime needs no macro:
///
/// ```
/// use nats_otel_runtime::{Json, NatsService};
/// # #[derive(serde::Deserialize)] struct Order { id: u64 }
/// async fn on_order(Json(order): Json<Order>) {}
///
/// # async fn demo(client: async_nats::Client) {
/// let service = NatsService::new(client).subscribe("orders.*", on_order);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a nats-otel handler of a service with state `{S}`",
    label = "not an async fn over extractors of state `{S}`",
    note = "a handler is an `async fn` whose arguments implement `FromMessage<{S}>` and whose return type implements `IntoOutcome`",
    note = "a `State<T>` argument needs the service's state to be `T` (or to provide it: `FromRef`): call `.state(value)` before `.handler(..)`, with a `Clone` value (it is cloned for each message: put shared data in an `Arc`)",
    note = "`#[nats_subscribe(..)]` or `#[jetstream_consumer(..)]` on the function makes other errors point at the offending argument"
)]
pub trait Handler<T, S>: sealed::Sealed<T, S> + Clone + Send + Sync + Sized + 'static {
    /// The future the user's function returns.
    type Future: Future<Output = Self::Output> + Send + 'static;
    /// What the function returns.
    type Output: IntoOutcome;
    /// Whether one of the arguments carries the trace context in the payload.
    const TRACE_CONTEXT_IN_BODY: bool;
    /// Whether one of the arguments settles JetStream messages itself.
    const SETTLES_ITSELF: bool;
    /// Whether it takes batches ([`Batch`]): only a handler declared with
    /// `batch_size` does.
    const BATCH: bool = false;

    /// Extracts the arguments and calls the function.
    fn call(&self, incoming: &Incoming, state: &S) -> Result<Self::Future, Rejection>;
}

/// `Handler` is implemented here only: for async fns over extractors and for
/// the functions the macros declare. A type of the user's would bypass the
/// guards and the extraction order the service relies on; write an async fn.
///
/// ```compile_fail
/// use nats_otel_runtime::{Handler, Incoming, Rejection};
/// #[derive(Clone)]
/// struct Mine;
/// impl Handler<(), ()> for Mine {
///     type Future = std::future::Ready<()>;
///     type Output = ();
///     const TRACE_CONTEXT_IN_BODY: bool = false;
///     const SETTLES_ITSELF: bool = false;
///     fn call(&self, _: &Incoming, _: &()) -> Result<Self::Future, Rejection> {
///         Ok(std::future::ready(()))
///     }
/// }
/// ```
mod sealed {
    pub trait Sealed<T, S> {}
}

/// Calls `$m!(T1, …, Tn)` for every arity from 0 to 16.
macro_rules! for_each_arity {
    ($m:ident) => {
        $m!();
        $m!(T1);
        $m!(T1, T2);
        $m!(T1, T2, T3);
        $m!(T1, T2, T3, T4);
        $m!(T1, T2, T3, T4, T5);
        $m!(T1, T2, T3, T4, T5, T6);
        $m!(T1, T2, T3, T4, T5, T6, T7);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15);
        $m!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15, T16);
    };
}

macro_rules! impl_handler {
    ($($ty:ident),*) => {
        impl<F, Fut, S, $($ty,)*> sealed::Sealed<($($ty,)*), S> for F
        where
            F: Fn($($ty),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutcome,
            $($ty: FromMessage<S> + Extractor,)*
        {
        }

        impl<F, Fut, S, $($ty,)*> Handler<($($ty,)*), S> for F
        where
            F: Fn($($ty),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutcome,
            $($ty: FromMessage<S> + Extractor,)*
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

for_each_arity!(impl_handler);

/// How a macro-declared handler gets its arguments `Args` (a tuple of the
/// function's argument types) from a message, with service state `S`.
///
/// Implemented by the marker type the macros emit. Extractor arguments go
/// through [`FromMessage`]; arguments named after a `{capture}` of the subject
/// are parsed from that subject token. This is what lets a handler take
/// `region: Region` although `Region` is not an extractor.
#[diagnostic::on_unimplemented(
    message = "the arguments of this handler cannot be extracted with state `{S}`",
    note = "for `State<T>`, the service's state must provide `T` through `FromRef`"
)]
pub trait Declaration<S, Args>: 'static {
    /// Whether one of the arguments carries the trace context in the payload.
    const TRACE_CONTEXT_IN_BODY: bool;
    /// Whether one of the arguments settles JetStream messages itself.
    const SETTLES_ITSELF: bool;
    /// Whether the handler takes batches (it was declared with `batch_size`).
    const BATCH: bool = false;

    /// Extracts every argument, in order.
    fn extract(incoming: &Incoming, state: &S) -> Result<Args, Rejection>;
}

/// The future of a macro-declared handler: the user's future, unchanged, tagged
/// with the handler's [`Descriptor`](crate::Descriptor) `D`.
///
/// It is an [`IntoFuture`](std::future::IntoFuture), so `handler(args).await`
/// gives exactly what the user's `async fn` returns: the function stays callable
/// as written (in unit tests, say). The tag is how
/// [`NatsService::handler`](crate::NatsService::handler) finds the subject, the options
/// and the argument extraction from the function alone.
pub struct Declared<F, D> {
    inner: F,
    descriptor: PhantomData<fn() -> D>,
}

impl<F, D> Declared<F, D> {
    /// Tags `inner` with `D`.
    pub fn new(inner: F) -> Self {
        Self { inner, descriptor: PhantomData }
    }

    /// The user's future.
    pub fn into_inner(self) -> F {
        self.inner
    }
}

impl<F: Future, D> std::future::IntoFuture for Declared<F, D> {
    type Output = F::Output;
    type IntoFuture = F;

    fn into_future(self) -> F {
        self.inner
    }
}

impl<F, D> std::fmt::Debug for Declared<F, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declared").field("descriptor", &std::any::type_name::<D>()).finish()
    }
}

/// See [`DeclaredHandler`](crate::DeclaredHandler).
pub struct DeclaredArgs<D, Args>(PhantomData<fn() -> (D, Args)>);

impl<D, Args> std::fmt::Debug for DeclaredArgs<D, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<D>())
    }
}

macro_rules! impl_declared_handler {
    ($($ty:ident),*) => {
        impl<F, Fut, D, S, $($ty,)*> sealed::Sealed<DeclaredArgs<D, ($($ty,)*)>, S> for F
        where
            F: Fn($($ty),*) -> Declared<Fut, D> + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutcome,
            D: Declaration<S, ($($ty,)*)>,
        {
        }

        impl<F, Fut, D, S, $($ty,)*> Handler<DeclaredArgs<D, ($($ty,)*)>, S> for F
        where
            F: Fn($($ty),*) -> Declared<Fut, D> + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutcome,
            D: Declaration<S, ($($ty,)*)>,
        {
            type Future = Fut;
            type Output = Fut::Output;
            const TRACE_CONTEXT_IN_BODY: bool = D::TRACE_CONTEXT_IN_BODY;
            const SETTLES_ITSELF: bool = D::SETTLES_ITSELF;
            const BATCH: bool = D::BATCH;

            #[allow(non_snake_case)]
            #[inline]
            fn call(&self, incoming: &Incoming, state: &S) -> Result<Fut, Rejection> {
                let ($($ty,)*) = D::extract(incoming, state)?;
                Ok(self($($ty),*).into_inner())
            }
        }
    };
}

for_each_arity!(impl_declared_handler);
