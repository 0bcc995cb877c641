//! What a server reports of a traced message (ADR-41; the format of
//! nats-server's `server/msgtrace.go`): who it is, the message's headers, and
//! what it did with the message, in order.
//!
//! Read leniently: unknown event types and fields are skipped, so a newer
//! server's reports still become spans.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer};

use crate::otel::broker::NATS_TRACE_HOP;

/// One server's report on one message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ServerReport {
    /// The server that made it.
    pub server: ServerInfo,
    /// The message as the server received it.
    #[serde(default)]
    pub request: TraceRequest,
    /// How many servers it forwarded the message to.
    #[serde(default)]
    pub hops: u32,
    /// What it did, in order: the first is the ingress.
    #[serde(default)]
    pub events: Vec<TraceEvent>,
}

/// The reporting server.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Its name (`server_name`, or its id).
    #[serde(default)]
    pub name: String,
    /// The host it listens on.
    #[serde(default)]
    pub host: String,
    /// Its unique id.
    #[serde(default)]
    pub id: String,
    /// Its cluster, if any.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Its JetStream domain, if any.
    #[serde(default)]
    pub domain: Option<String>,
    /// Its version.
    #[serde(default, rename = "ver")]
    pub version: String,
    /// When it sent the report.
    #[serde(default, deserialize_with = "optional_time")]
    pub time: Option<SystemTime>,
}

/// The message as the server received it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct TraceRequest {
    /// Its headers (names as sent; `traceparent` lower-cased).
    #[serde(default, rename = "header")]
    pub headers: HashMap<String, Vec<String>>,
    /// Its size in bytes (headers and payload).
    #[serde(default, rename = "msgsize")]
    pub size: u64,
}

impl TraceRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    /// Where this report sits in the message's path: `""` for the server the
    /// publisher is connected to, `1`, `1.2`, … for servers it was forwarded to.
    pub fn hop(&self) -> &str {
        self.header(NATS_TRACE_HOP).unwrap_or_default()
    }
}

/// The kind of a connection a message came in on or went out to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionKind {
    /// An application.
    Client,
    /// Another server of the cluster.
    Route,
    /// A server of another cluster (super-cluster).
    Gateway,
    /// The server itself.
    System,
    /// A leaf node.
    Leaf,
    /// JetStream.
    JetStream,
    /// An account's internal connection (imports, exports).
    Account,
    /// A kind this version does not know.
    Other(i64),
}

impl ConnectionKind {
    /// Its name in span attributes (`client`, `route`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Route => "route",
            Self::Gateway => "gateway",
            Self::System => "system",
            Self::Leaf => "leaf",
            Self::JetStream => "jetstream",
            Self::Account => "account",
            Self::Other(_) => "other",
        }
    }

    /// Whether the connection leads to another server (whose report follows).
    pub fn is_server(self) -> bool {
        matches!(self, Self::Route | Self::Gateway | Self::Leaf)
    }
}

impl<'de> Deserialize<'de> for ConnectionKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // nats-server's client kinds (server/client.go).
        Ok(match i64::deserialize(deserializer)? {
            0 => Self::Client,
            1 => Self::Route,
            2 => Self::Gateway,
            3 => Self::System,
            4 => Self::Leaf,
            5 => Self::JetStream,
            6 => Self::Account,
            other => Self::Other(other),
        })
    }
}

/// One thing a server did with the message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum TraceEvent {
    /// The message came in.
    #[serde(rename = "in")]
    Ingress {
        /// When.
        #[serde(deserialize_with = "time", rename = "ts")]
        at: SystemTime,
        /// On what kind of connection.
        kind: ConnectionKind,
        /// The connection's name (a client's name, a route's server).
        #[serde(default)]
        name: String,
        /// The account.
        #[serde(default, rename = "acc")]
        account: String,
        /// The subject it was published to.
        #[serde(default, rename = "subj")]
        subject: String,
        /// Why it went no further (a permissions violation, a size limit).
        #[serde(default)]
        error: Option<String>,
    },
    /// A subject mapping rewrote its subject.
    #[serde(rename = "sm")]
    SubjectMapping {
        /// When.
        #[serde(deserialize_with = "time", rename = "ts")]
        at: SystemTime,
        /// The subject after the mapping.
        #[serde(default, rename = "to")]
        mapped_to: String,
    },
    /// A stream export carried it to another account.
    #[serde(rename = "se")]
    StreamExport {
        /// When.
        #[serde(deserialize_with = "time", rename = "ts")]
        at: SystemTime,
        /// The importing account.
        #[serde(default, rename = "acc")]
        account: String,
        /// The subject there.
        #[serde(default)]
        to: String,
    },
    /// A service import carried it to another account.
    #[serde(rename = "si")]
    ServiceImport {
        /// When.
        #[serde(deserialize_with = "time", rename = "ts")]
        at: SystemTime,
        /// The exporting account.
        #[serde(default, rename = "acc")]
        account: String,
        /// The subject imported.
        #[serde(default)]
        from: String,
        /// The subject it became.
        #[serde(default)]
        to: String,
    },
    /// JetStream took it for a stream.
    #[serde(rename = "js")]
    JetStream {
        /// When it was stored (or refused).
        #[serde(deserialize_with = "time", rename = "ts")]
        at: SystemTime,
        /// The stream.
        #[serde(default)]
        stream: String,
        /// The subject it was stored under.
        #[serde(default)]
        subject: Option<String>,
        /// Whether the stream had no interest (interest retention: not stored).
        #[serde(default, rename = "nointerest")]
        no_interest: bool,
        /// Why it was not stored.
        #[serde(default)]
        error: Option<String>,
    },
    /// It went out on a connection.
    #[serde(rename = "eg")]
    Egress {
        /// When.
        #[serde(deserialize_with = "time", rename = "ts")]
        at: SystemTime,
        /// To what kind of connection.
        kind: ConnectionKind,
        /// The connection's name.
        #[serde(default)]
        name: String,
        /// For a server connection: the hop the next report will carry.
        #[serde(default)]
        hop: Option<String>,
        /// The destination's account, when it differs from the ingress'.
        #[serde(default, rename = "acc")]
        account: Option<String>,
        /// For a client: the subscription's subject.
        #[serde(default, rename = "sub")]
        subscription: Option<String>,
        /// For a client: the subscription's queue group.
        #[serde(default)]
        queue: Option<String>,
        /// Why it was not delivered.
        #[serde(default)]
        error: Option<String>,
    },
    /// An event type this version does not know.
    #[serde(other)]
    Unknown,
}

impl TraceEvent {
    /// When it happened (`None` for an unknown event).
    pub fn at(&self) -> Option<SystemTime> {
        match self {
            Self::Ingress { at, .. }
            | Self::SubjectMapping { at, .. }
            | Self::StreamExport { at, .. }
            | Self::ServiceImport { at, .. }
            | Self::JetStream { at, .. }
            | Self::Egress { at, .. } => Some(*at),
            Self::Unknown => None,
        }
    }
}

/// An RFC 3339 time with nanoseconds, as Go writes them.
fn time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse_time(&text).map_err(serde::de::Error::custom)
}

fn optional_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SystemTime>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
    Ok(text.and_then(|text| parse_time(&text).ok()))
}

fn parse_time(text: &str) -> Result<SystemTime, time::error::Parse> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn a_report_reads_with_nanosecond_times_and_unknown_parts_skipped() {
        let report: ServerReport = serde_json::from_str(
            r#"{"server":{"name":"n1","host":"0.0.0.0","id":"NB5","ver":"2.15.1","cluster":"c1",
                "time":"2026-11-28T02:18:57.461665084Z","new_field":1},
               "request":{"header":{"traceparent":["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
                                    "Nats-Trace-Hop":["1.2"]},"msgsize":108},
               "hops":1,
               "events":[
                 {"type":"in","ts":"2026-11-28T02:18:57.461301141+01:00","kind":1,"cid":9,"acc":"$G","subj":"orders.eu"},
                 {"type":"zz","ts":"2026-11-28T02:18:57Z"},
                 {"type":"eg","ts":"2026-11-28T02:18:57.4613Z","kind":0,"cid":9,"sub":"orders.*","queue":"q1"}]}"#,
        )
        .unwrap();
        assert_eq!(report.server.cluster.as_deref(), Some("c1"));
        assert_eq!(report.request.hop(), "1.2");
        assert_eq!(report.request.header("TRACEPARENT").map(str::len), Some(55));
        let at = UNIX_EPOCH + Duration::new(1_795_832_337, 461_301_141) - Duration::from_secs(3600);
        assert_eq!(report.events[0].at(), Some(at), "offsets are honoured");
        assert!(matches!(report.events[0], TraceEvent::Ingress { kind: ConnectionKind::Route, .. }));
        assert_eq!(report.events[1], TraceEvent::Unknown);
        assert!(matches!(&report.events[2], TraceEvent::Egress { queue: Some(q), .. } if q == "q1"));
    }

    #[test]
    fn hostile_reports_are_errors_not_panics() {
        for text in [
            "",
            "null",
            "[]",
            r#"{"server":{}}"#,
            r#"{"server":{},"events":[{"type":"in","ts":"yesterday","kind":0}]}"#,
            r#"{"server":{},"events":[{"type":"in","ts":"2026-11-28T02:18:57Z","kind":"client"}]}"#,
            r#"{"server":{},"events":[{"type":"in","ts":"9999-99-99T99:99:99Z","kind":0}]}"#,
        ] {
            let parsed = serde_json::from_str::<ServerReport>(text);
            if text == r#"{"server":{}}"# {
                assert!(parsed.is_ok(), "{text}");
            } else {
                assert!(parsed.is_err(), "{text}");
            }
        }
    }
}
