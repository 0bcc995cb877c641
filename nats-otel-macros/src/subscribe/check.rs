//! Check: the rules on a [`Subscribe`], from the rule book the runtime checks
//! too (`nats_otel_rules`). Every error is reported, at the value it is about.

use nats_otel_rules::Setting;

use crate::diagnostics::{Diagnostics, subspan};
use crate::subscribe::model::Subscribe;

impl Subscribe {
    pub(crate) fn check(&self, diagnostics: &mut Diagnostics) {
        if let Some(lit) = &self.queue
            && let Err(e) = nats_otel_rules::validate_queue_group(&lit.value())
        {
            diagnostics.error_with_help(subspan(lit, e.range.clone()), e.message(), e.help());
        }
        if let Some(concurrency) = &self.concurrency
            && let Err(e) = nats_otel_rules::validate_positive(Setting::Concurrency, concurrency.value as u64)
        {
            diagnostics.error_with_help(concurrency.span, e.message(), e.help());
        }
        self.options.check(diagnostics);
    }
}
