//! Subject captures as handler arguments.
//!
//! A handler subject can name tokens: `orders.{region}.created`. The handler then
//! takes an argument of the same name, parsed from that token of each message's
//! subject; it subscribes to the pattern (`orders.*.created`).
//!
//! ```
//! use nats_otel_runtime::prelude::*;
//!
//! #[derive(Debug, PartialEq)]
//! enum Region { Eu, Us }
//!
//! impl std::str::FromStr for Region {
//!     type Err = String;
//!     fn from_str(token: &str) -> Result<Self, String> {
//!         match token {
//!             "eu" => Ok(Region::Eu),
//!             "us" => Ok(Region::Us),
//!             other => Err(format!("unknown region `{other}`")),
//!         }
//!     }
//! }
//!
//! #[nats_subscribe("orders.{region}.created")]
//! async fn on_created(region: Region, Json(id): Json<u64>) {
//!     // a message on `orders.eu.created` gives `Region::Eu`; on `orders.mars.created`
//!     // it is rejected with "capture `{region}` = \"mars\": unknown region `mars`"
//!     // (a poison message: termed on JetStream, an error reply to requests).
//! }
//! ```
//!
//! A capture without an argument of its name is a compile error at the capture,
//! and so is an argument type that cannot be parsed from a token:
//!
//! ```compile_fail
//! use nats_otel_runtime::prelude::*;
//!
//! #[nats_subscribe("orders.{region}.created")]
//! async fn on_created(Json(id): Json<u64>) {} // error: `{region}` has no argument
//! ```

use std::fmt;
use std::str::FromStr;

use super::extract::Rejection;
use super::incoming::Incoming;

/// A value parsed from one subject token: the type of a `{capture}` argument.
///
/// Implemented for every [`FromStr`] type whose error is [`Display`](fmt::Display):
/// strings, integers, `Uuid`, and your enums.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed from a subject token",
    label = "the argument of a `{{capture}}` is parsed from its token",
    note = "implement `std::str::FromStr` (with an error that implements `Display`) for `{Self}`"
)]
pub trait FromToken: Sized {
    /// Parses `token`; the error says why it is not a valid value.
    fn from_token(token: &str) -> Result<Self, String>;
}

impl<T> FromToken for T
where
    T: FromStr,
    T::Err: fmt::Display,
{
    #[inline]
    fn from_token(token: &str) -> Result<Self, String> {
        token.parse().map_err(|e: T::Err| e.to_string())
    }
}

/// The error type of a capture that does not parse.
pub const INVALID_CAPTURE: &str = "nats_otel::InvalidCapture";

/// Parses the `{name}` capture, the `index`-th token of the handler's subject
/// (after the service's subject prefix, if any). Used by the macros.
#[doc(hidden)]
pub fn capture<T: FromToken>(incoming: &Incoming, index: usize, name: &'static str) -> Result<T, Rejection> {
    let subject = incoming.subject().as_str();
    let Some(token) = nats_otel_rules::token_at(subject, incoming.subject_offset + index) else {
        return Err(Rejection::new(
            INVALID_CAPTURE,
            format!("subject `{subject}` has no token for the capture `{{{name}}}`"),
        ));
    };
    T::from_token(token)
        .map_err(|e| Rejection::new(INVALID_CAPTURE, format!("capture `{{{name}}}` = {token:?}: {e}")))
}
