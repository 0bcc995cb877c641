//! JetStream consumers at work: pulling, the settlement table, the settler and
//! its heartbeats, dead letters.
//!
//! A settlement rule goes in [`settle`]; a dead-letter header or size rule in
//! [`dead_letter`]. The consumer's options are in
//! [`JetStreamConsumer`].

mod batch;
mod batching;
mod consumer;
pub mod dead_letter;
mod keep_alive;
mod ordered;
mod pulling;
pub mod settle;
mod settler;
pub(crate) mod setup;
mod shared;

pub use crate::endpoint::{
    AckMode, DEFAULT_BATCH, DEFAULT_JETSTREAM_CONCURRENCY, DeadLetterRoute, Deliver, JetStreamConsumer,
    KvHistory, SettleRecord,
};
pub use crate::handler::{Acker, JetStreamInfo};
pub(crate) use consumer::ConsumerEndpoint;
/// Headers a dead-lettered message carries, besides the trace context.
pub use dead_letter::headers as dead_letter_headers;
