//! Streams declared in code (`#[derive(NatsStream)]`): their name and subjects
//! are constants, so a consumer naming the type has its filters checked against
//! the subjects at compile time, and start-up creates or updates the stream.

/// A JetStream stream a service declares in code. Derive it:
///
/// ```
/// use nats_otel_runtime::prelude::*;
///
/// #[derive(NatsStream)]
/// #[nats_stream(name = "ORDERS", subjects = ["orders.>"], storage = "memory", max_age = "168h")]
/// struct Orders;
///
/// // A consumer naming the type: its filter is checked against `orders.>` at
/// // compile time, and `start` creates or updates ORDERS before it binds.
/// #[jetstream_consumer(stream = Orders, durable = "billing", filter = "orders.*.placed")]
/// async fn bill(body: String) -> Result<(), ServiceError> { Ok(()) }
///
/// assert_eq!(Orders::NAME, "ORDERS");
/// assert_eq!(Orders::config().subjects, ["orders.>"]);
/// ```
///
/// A filter outside the stream's subjects does not compile:
///
/// ```compile_fail
/// # use nats_otel_runtime::prelude::*;
/// #[derive(NatsStream)]
/// #[nats_stream(name = "ORDERS", subjects = ["orders.>"])]
/// struct Orders;
///
/// #[jetstream_consumer(stream = Orders, durable = "billing", filter = "payments.>")]
/// async fn bill(body: String) {} // error: `payments.>` lies outside stream `ORDERS`'s subjects
/// # fn main() {}
/// ```
pub trait NatsStream {
    /// The stream's name.
    const NAME: &'static str;
    /// The subjects it captures.
    const SUBJECTS: &'static [&'static str];

    /// The configuration start-up creates or updates the stream with.
    fn config() -> async_nats::jetstream::stream::Config;
}

/// Whether one of `subjects` captures every subject `filter` matches: the rule
/// a consumer on a declared stream must meet, checked where it is known.
pub const fn filter_in_stream(subjects: &[&str], filter: &str) -> bool {
    let mut i = 0;
    while i < subjects.len() {
        if nats_otel_rules::covers(subjects[i], filter) {
            return true;
        }
        i += 1;
    }
    false
}
