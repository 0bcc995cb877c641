//! The broker inside the trace: nats-server's message-path tracing (ADR-41,
//! nats-server 2.11+) as OpenTelemetry spans.
//!
//! A traced message makes every server it crosses publish a report (JSON) to a
//! trace destination: how the message came in (from a client, a route, a
//! gateway, a leaf node), the account and subject, subject mappings, imports and
//! exports, whether JetStream stored it and where, and every connection it went
//! out on, with errors (a permissions violation) and timestamps. The
//! [`Collector`] subscribes to the destination and records each report as a
//! span, `nats-server {name}`, in the message's own trace: the first server's
//! under the publisher's `send` span (from the `traceparent` the report
//! echoes), each other server's under the server that forwarded the message to
//! it, timed by the report's events. A trace then shows which servers the
//! message crossed and how long each held it.
//!
//! # Turning it on
//!
//! Either way, run a [`Collector`] on the destination subject.
//!
//! **From the publisher**: [`Publisher::broker_tracing`](crate::Publisher::broker_tracing)
//! adds `Nats-Trace-Dest` to a share of sampled publishes
//! ([`BrokerTracing`](crate::broker::BrokerTracing), its own ratio). Off by
//! default: no header, no subscription.
//!
//! **From the account**: nats-server traces every message of an account whose
//! `traceparent` is sampled, no header needed, with `msg_trace` in the
//! account's configuration (`sampling` in percent):
//!
//! ```text
//! accounts {
//!   APP {
//!     users: [ { user: app, password: secret } ]
//!     msg_trace { dest: "traces.broker", sampling: 10 }
//!   }
//! }
//! ```
//!
//! # Dry runs
//!
//! [`dry_run`] asks the servers where a message *would* go
//! (`Nats-Trace-Only`): the same reports, as a span tree and a [`Route`],
//! without delivering it.
//!
//! Reports without a valid `traceparent` join no trace and are counted as
//! untraceable; reports that are not reports are counted as malformed, with a
//! rate-limited warning; neither stops the collector.

mod collector;
mod dry_run;
mod journeys;
pub mod report;
pub mod spans;

pub use collector::{Collector, CollectorCounts, CollectorHandle, DEFAULT_HOP_WAIT, DEFAULT_QUEUE_GROUP};
pub use dry_run::{DEFAULT_DRY_RUN_WAIT, Delivery, Route, dry_run};
