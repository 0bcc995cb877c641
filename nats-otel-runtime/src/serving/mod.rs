//! Serving endpoints: the one loop every endpoint kind runs, the interface a
//! registered endpoint offers the service, and the core subscription kind.
//!
//! A new endpoint kind brings a [`Source`] (where its work comes from) and a
//! [`Step`] (what handling one unit means) and runs [`serve`]; start/stop
//! behaviour lives in the loop, once.

pub(crate) mod connection;
pub(crate) mod core;
pub(crate) mod invoke;
mod serve_loop;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::Client;
use tokio::sync::watch;

use crate::endpoint::discovery::{EndpointInfo, EndpointStats};
use crate::error::ServeError;
use crate::otel::metrics::Instruments;

pub(crate) use serve_loop::{Next, Source, Step, serve};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a subscription loop needs from the service.
pub(crate) struct Run<S> {
    pub(crate) client: Client,
    pub(crate) state: Arc<S>,
    pub(crate) stopped: watch::Receiver<bool>,
    pub(crate) instruments: Arc<Instruments>,
    /// The endpoint's Services API counts, recorded with its metrics.
    pub(crate) stats: Arc<EndpointStats>,
}

/// A registered endpoint, with its handler type erased.
pub(crate) trait Serve<S>: Send {
    fn describe(&self) -> String;
    fn apply_prefix(&mut self, prefix: &crate::endpoint::prefix::SubjectPrefix);
    /// Its configuration, for the service's contract.
    fn endpoint(&self) -> crate::endpoint::Endpoint;
    /// Subscribes (or binds its consumer), ready to serve.
    fn prepare(self: Box<Self>, client: &Client) -> BoxFuture<Result<Box<dyn Ready<S>>, ServeError>>;
}

/// An endpoint whose subscription is live, waiting to serve.
pub(crate) trait Ready<S>: Send {
    fn describe(&self) -> String;
    /// The core subject it subscribes to, to match a subscription the server refuses.
    fn subscribed_subject(&self) -> Option<&str>;
    /// What the Services API's `INFO` says of it.
    fn info(&self) -> EndpointInfo;
    fn serve(self: Box<Self>, run: Run<S>) -> BoxFuture<Result<(), ServeError>>;
}
