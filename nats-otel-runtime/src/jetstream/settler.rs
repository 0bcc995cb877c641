//! Sends one message's settlement and records it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::AckKind;
use opentelemetry::trace::TraceContextExt;

use super::keep_alive::Beating;
use crate::endpoint::AckMode;
use crate::handler::Settlement;
use crate::handler::jetstream::SettleByHand;
use crate::otel::metrics::EndpointMetrics;
use crate::otel::spans::{self, Fault, SettleSpans, SettledMessage};
use crate::serving::invoke::telemetry_or_default;

/// Settles one message: sends the ack, nak or term, records it on the process
/// span and in a settle span. Shared by automatic settlement and [`Acker`].
pub(crate) struct Settler {
    pub(crate) acker: async_nats::jetstream::message::Acker,
    pub(crate) mode: AckMode,
    pub(crate) spans: Arc<SettleSpans>,
    /// What its settle spans say of the message.
    pub(crate) message: SettledMessage,
    /// The process span's context: the span ends when its last holder (this, the
    /// message, an `Acker` the handler kept) lets go.
    pub(crate) process: opentelemetry::Context,
    pub(crate) settled: AtomicBool,
    pub(crate) metrics: Arc<EndpointMetrics>,
    /// One message of a batch: the process span is the batch's, and says
    /// nothing of one message's settlement.
    pub(crate) in_batch: bool,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Settler {
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    pub(crate) async fn settle(&self, settlement: Settlement) -> Result<(), async_nats::Error> {
        let kind = match settlement {
            Settlement::Ack => AckKind::Ack,
            Settlement::Nak(delay) => AckKind::Nak(delay),
            Settlement::Term | Settlement::DeadLetter => AckKind::Term,
        };
        self.settled.store(true, Ordering::Release);
        // Nothing runs inside the settle span: it is never made current.
        let settle_span = telemetry_or_default(|| {
            self.spans.start(&self.process, &self.message, settlement, self.in_batch)
        });
        let started = std::time::Instant::now();
        let sent = match self.mode {
            AckMode::Fire => self.acker.ack_with(kind).await,
            AckMode::Confirmed => self.acker.double_ack_with(kind).await,
        };
        if let Err(e) = &sent {
            let failed_on = settle_span.as_ref().unwrap_or(&self.process);
            let message = format!("failed to {}: {e}", settlement.as_str());
            spans::record_error(failed_on, self.spans.name(), Fault::Service, "settle", &message);
        }
        if let Some(settle_span) = settle_span {
            // Span processors run as the span ends: one that panics costs this
            // span, and must not unwind through the drop of the process span
            // (a second panic there would abort the process).
            telemetry_or_default(|| settle_span.span().end());
        }
        self.metrics.settled(settlement, started.elapsed(), sent.as_ref().err().map(|_| "settle"));
        sent
    }

    pub(crate) async fn progress(&self) {
        let _ = self.acker.ack_with(AckKind::Progress).await;
    }
}

impl Beating for Settler {
    fn is_settled(&self) -> bool {
        Settler::is_settled(self)
    }

    fn in_progress(&self) -> impl Future<Output = ()> + Send + '_ {
        self.progress()
    }
}

impl SettleByHand for Settler {
    fn settle(
        &self,
        settlement: Settlement,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), async_nats::Error>> + Send + '_>> {
        Box::pin(Settler::settle(self, settlement))
    }

    fn in_progress(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.progress())
    }
}
