//! The NATS Services API (ADR-32): a named service answers `$SRV.PING`,
//! `$SRV.INFO` and `$SRV.STATS`, on all three subject forms (`$SRV.PING`,
//! `$SRV.PING.<name>`, `$SRV.PING.<name>.<id>`), so `nats micro ls|info|stats`
//! and the other languages' clients discover it, its endpoints and their counts.
//!
//! A named service also answers `$SRV.ASYNCAPI` (same three forms) with its
//! AsyncAPI document, and names that subject in its metadata
//! (`nats_otel.asyncapi`).
//!
//! Control subjects have subscriptions of their own, without a queue group
//! (every instance answers), and no span: a ping is not the service's work.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::{Client, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::endpoint::discovery::{EndpointInfo, EndpointStats, StatsSnapshot, duration_nanos};
use crate::error::{ServeError, ServeErrorKind};
use crate::otel::TARGET;

/// What a named service says of itself.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl Identity {
    /// Checks the name and version against ADR-32's rules.
    pub(crate) fn validate(&self) -> Result<(), ServeError> {
        let invalid = |what: &str, value: &str, e: nats_otel_rules::ServiceRuleError| {
            ServeError::with_source(ServeErrorKind::InvalidIdentity, e)
                .context(format!("service {what} `{value}`"))
        };
        nats_otel_rules::validate_service_name(&self.name).map_err(|e| invalid("name", &self.name, e))?;
        nats_otel_rules::validate_service_version(&self.version)
            .map_err(|e| invalid("version", &self.version, e))
    }
}

/// A service's endpoints and their counts, shared by the responder and the
/// service's handle.
#[derive(Debug)]
pub(crate) struct Registry {
    pub(crate) identity: Option<Identity>,
    /// This instance's unique id (a NUID, as the other clients make them).
    pub(crate) id: String,
    pub(crate) started: SystemTime,
    pub(crate) endpoints: Vec<(EndpointInfo, Arc<EndpointStats>)>,
    /// The AsyncAPI document, as JSON (a named service).
    pub(crate) asyncapi: Option<Bytes>,
}

impl Registry {
    /// Endpoint names made unique (`charge`, `charge-2`, …): ADR-32 tools key
    /// endpoints by name.
    pub(crate) fn new(
        identity: Option<Identity>,
        mut endpoints: Vec<(EndpointInfo, Arc<EndpointStats>)>,
        asyncapi: Option<Bytes>,
    ) -> Self {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for (info, _) in &mut endpoints {
            let count = seen.entry(info.name.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                info.name = format!("{}-{count}", info.name);
            }
        }
        Self { identity, id: nuid::next().to_string(), started: SystemTime::now(), endpoints, asyncapi }
    }

    /// Every endpoint with its counts now.
    pub(crate) fn stats(&self) -> Vec<(EndpointInfo, StatsSnapshot)> {
        self.endpoints.iter().map(|(info, stats)| (info.clone(), stats.snapshot())).collect()
    }

    pub(crate) fn reset_stats(&self) {
        for (_, stats) in &self.endpoints {
            stats.reset();
        }
    }
}

const PING: &str = "io.nats.micro.v1.ping_response";
const INFO: &str = "io.nats.micro.v1.info_response";
const STATS: &str = "io.nats.micro.v1.stats_response";

/// What every response starts with: its type and the service's identity.
#[derive(Serialize)]
struct Header<'a> {
    r#type: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct InfoResponse<'a> {
    #[serde(flatten)]
    header: Header<'a>,
    description: &'a str,
    endpoints: Vec<&'a EndpointInfo>,
}

#[derive(Serialize)]
struct StatsResponse<'a> {
    #[serde(flatten)]
    header: Header<'a>,
    started: String,
    endpoints: Vec<EndpointStatsJson>,
}

#[derive(Serialize)]
struct EndpointStatsJson {
    name: String,
    subject: String,
    queue_group: String,
    num_requests: u64,
    num_errors: u64,
    last_error: String,
    /// Nanoseconds.
    processing_time: u64,
    /// Nanoseconds.
    average_processing_time: u64,
    /// No endpoint-specific data (ADR-32 allows `null`).
    data: Option<()>,
}

/// The requests, on every subject form: ADR-32's three, and the service's
/// AsyncAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ping,
    Info,
    Stats,
    AsyncApi,
}

impl Verb {
    const ALL: [Verb; 4] = [Verb::Ping, Verb::Info, Verb::Stats, Verb::AsyncApi];

    fn token(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
            Verb::AsyncApi => "ASYNCAPI",
        }
    }
}

/// Where a named service answers with its AsyncAPI document.
pub(crate) fn asyncapi_subject(name: &str) -> String {
    format!("$SRV.{}.{name}", Verb::AsyncApi.token())
}

impl Registry {
    fn respond(&self, identity: &Identity, verb: Verb) -> serde_json::Result<Bytes> {
        let header = |r#type| Header {
            r#type,
            name: &identity.name,
            id: &self.id,
            version: &identity.version,
            metadata: &identity.metadata,
        };
        let body = match verb {
            Verb::AsyncApi => return Ok(self.asyncapi.clone().unwrap_or_default()),
            Verb::Ping => serde_json::to_vec(&header(PING)),
            Verb::Info => serde_json::to_vec(&InfoResponse {
                header: header(INFO),
                description: identity.description.as_deref().unwrap_or_default(),
                endpoints: self.endpoints.iter().map(|(info, _)| info).collect(),
            }),
            Verb::Stats => serde_json::to_vec(&StatsResponse {
                header: header(STATS),
                started: rfc3339_micros(self.started),
                endpoints: self
                    .stats()
                    .into_iter()
                    .map(|(info, stats)| EndpointStatsJson {
                        num_requests: stats.requests,
                        num_errors: stats.errors,
                        processing_time: duration_nanos(stats.processing_time),
                        average_processing_time: duration_nanos(stats.average_processing_time()),
                        last_error: stats.last_error,
                        name: info.name,
                        subject: info.subject,
                        queue_group: info.queue_group,
                        data: None,
                    })
                    .collect(),
            }),
        };
        body.map(Bytes::from)
    }
}

/// The control subjects' subscriptions, live: made when the service starts.
pub(crate) struct Control {
    client: Client,
    registry: Arc<Registry>,
    identity: Identity,
    requests: futures_util::stream::SelectAll<futures_util::stream::Map<async_nats::Subscriber, Tagger>>,
}

type Tagger = Box<dyn FnMut(Message) -> (Verb, Message) + Send>;

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("identity", &self.identity).finish_non_exhaustive()
    }
}

/// Subscribes to the control subjects of a named service (none without a name):
/// three forms of each verb.
pub(crate) async fn subscribe(
    client: &Client,
    registry: &Arc<Registry>,
) -> Result<Option<Control>, ServeError> {
    let Some(identity) = registry.identity.clone() else { return Ok(None) };
    let mut subscriptions = Vec::with_capacity(Verb::ALL.len() * 3);
    for verb in Verb::ALL {
        for subject in [
            format!("$SRV.{}", verb.token()),
            format!("$SRV.{}.{}", verb.token(), identity.name),
            format!("$SRV.{}.{}.{}", verb.token(), identity.name, registry.id),
        ] {
            let subscriber = client.subscribe(subject.clone()).await.map_err(|e| {
                ServeError::with_source(ServeErrorKind::Subscribe, e)
                    .context(format!("Services API subject `{subject}`"))
            })?;
            let tag: Tagger = Box::new(move |message| (verb, message));
            subscriptions.push(subscriber.map(tag));
        }
    }
    Ok(Some(Control {
        client: client.clone(),
        registry: registry.clone(),
        identity,
        requests: futures_util::stream::select_all(subscriptions),
    }))
}

impl Control {
    /// Answers until `stopped`; an error when a subscription ends while serving.
    pub(crate) async fn serve(mut self, mut stopped: watch::Receiver<bool>) -> Result<(), ServeError> {
        let stop = async move {
            while !*stopped.borrow_and_update() {
                if stopped.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                request = self.requests.next() => match request {
                    Some((verb, message)) => {
                        answer(&self.client, &self.registry, &self.identity, verb, message).await;
                    }
                    None => {
                        return Err(ServeError::new(ServeErrorKind::SubscriptionClosed)
                            .context("the Services API subscriptions".to_owned()));
                    }
                },
            }
        }
    }
}

async fn answer(client: &Client, registry: &Registry, identity: &Identity, verb: Verb, message: Message) {
    let Some(reply) = message.reply else { return };
    match registry.respond(identity, verb) {
        Ok(body) => {
            if let Err(e) = client.publish(reply, body).await {
                tracing::warn!(target: TARGET, error = %e, "failed to answer a Services API {} request", verb.token());
            }
        }
        Err(e) => {
            tracing::warn!(target: TARGET, error = %e, "failed to encode a Services API {} response", verb.token())
        }
    }
}

/// `started` as the other clients write it and parse it: RFC 3339 in UTC with
/// microseconds (nats.py reads at most six fractional digits).
fn rfc3339_micros(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_micros()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn started_is_rfc3339_with_microseconds() {
        assert_eq!(rfc3339_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let at = UNIX_EPOCH + Duration::from_nanos(1_795_909_123_456_789_123);
        assert_eq!(rfc3339_micros(at), "2026-11-28T23:38:43.456789Z");
        // A leap day.
        assert_eq!(
            rfc3339_micros(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn endpoint_names_are_made_unique() {
        let info = |name: &str| EndpointInfo {
            name: name.to_owned(),
            subject: "s".to_owned(),
            queue_group: String::new(),
            metadata: BTreeMap::new(),
        };
        let registry = Registry::new(
            None,
            ["charge", "charge", "refund", "charge"].map(|n| (info(n), Arc::default())).into(),
            None,
        );
        let names: Vec<_> = registry.endpoints.iter().map(|(i, _)| i.name.as_str()).collect();
        assert_eq!(names, ["charge", "charge-2", "refund", "charge-3"]);
        assert_eq!(registry.id.len(), 22, "a NUID");
    }
}
