//! The connection spans describe (`messaging.client.id`, `server.address`,
//! `server.port`), followed across reconnections: after a failover the client
//! talks to another server, under a client id that server assigned.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use async_nats::{Client, ServerInfo, Statistics};
use opentelemetry::{KeyValue, StringValue};

use crate::semconv;
use crate::spans::intern;

/// How long a reconnection may be counted before its server's `INFO` shows;
/// past it, the `INFO` held is taken to be the new connection's.
const INFO_GRACE: Duration = Duration::from_secs(1);

/// One connection, as spans record it.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The client's connection count when this was read.
    connects: u64,
    /// With `client_id`, what tells one connection from another: client ids
    /// are only unique on one server.
    server_id: String,
    client_id: u64,
    /// `client_id` as recorded: shared with each span, freed with the last.
    client_id_value: StringValue,
    /// Interned: there are as many as there are servers.
    address: Option<&'static str>,
    port: Option<u16>,
}

impl Connection {
    fn of(info: &ServerInfo, connects: u64) -> Self {
        Self {
            connects,
            server_id: info.server_id.clone(),
            client_id: info.client_id,
            client_id_value: StringValue::from(Arc::<str>::from(info.client_id.to_string())),
            address: (!info.host.is_empty()).then(|| intern(&info.host)),
            port: (info.port != 0).then_some(info.port),
        }
    }

    fn is(&self, info: &ServerInfo) -> bool {
        self.client_id == info.client_id && self.server_id == info.server_id
    }

    /// The client's connection count when this was read.
    pub(crate) fn connects(&self) -> u64 {
        self.connects
    }

    /// The server's host, as its `INFO` gives it.
    pub(crate) fn address(&self) -> Option<&'static str> {
        self.address
    }

    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    /// Appends the connection's attributes; with `deprecated`, also under the
    /// pre-1.21 names the seed spec uses (`net.peer.name`, `net.peer.port`).
    pub(crate) fn extend(&self, attributes: &mut Vec<KeyValue>, deprecated: bool) {
        attributes.push(KeyValue::new(semconv::MESSAGING_CLIENT_ID, self.client_id_value.clone()));
        let port = self.port.map(i64::from);
        if let Some(address) = self.address {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, address));
        }
        if let Some(port) = port {
            attributes.push(KeyValue::new(semconv::SERVER_PORT, port));
        }
        if deprecated {
            if let Some(address) = self.address {
                attributes.push(KeyValue::new(semconv::deprecated::NET_PEER_NAME, address));
            }
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::deprecated::NET_PEER_PORT, port));
            }
        }
    }

    /// How many attributes [`extend`](Self::extend) appends at most.
    pub(crate) const MAX_ATTRIBUTES: usize = 5;
}

/// The current connection of a client, cheap to read for every span: one
/// atomic load tells whether the client reconnected since it was last read.
#[derive(Debug, Clone)]
pub(crate) struct Peer(Arc<Watch>);

#[derive(Debug)]
struct Watch {
    /// `None` for a fixed connection (unit tests).
    client: Option<(Client, Arc<Statistics>)>,
    current: ArcSwap<Connection>,
    /// A connection counted whose `INFO` was not there yet, and since when.
    awaiting_info: Mutex<Option<(u64, Instant)>>,
}

impl Peer {
    pub(crate) fn of(client: &Client) -> Self {
        let statistics = client.statistics();
        let connects = statistics.connects.load(Ordering::Relaxed);
        let current = Connection::of(&client.server_info(), connects);
        Self(Arc::new(Watch {
            client: Some((client.clone(), statistics)),
            current: ArcSwap::from_pointee(current),
            awaiting_info: Mutex::new(None),
        }))
    }

    /// A connection that never changes.
    #[cfg(test)]
    pub(crate) fn fixed(client_id: u64, host: &str, port: u16) -> Self {
        let info = ServerInfo { client_id, host: host.to_owned(), port, ..ServerInfo::default() };
        Self(Arc::new(Watch {
            client: None,
            current: ArcSwap::from_pointee(Connection::of(&info, 1)),
            awaiting_info: Mutex::new(None),
        }))
    }

    /// How many times the client has connected: cheap, to tell whether it has
    /// since [`Connection::connects`].
    pub(crate) fn connects(&self) -> u64 {
        match &self.0.client {
            Some((_, statistics)) => statistics.connects.load(Ordering::Relaxed),
            None => self.0.current.load().connects,
        }
    }

    /// The connection now: read again after the client reconnected.
    pub(crate) fn current(&self) -> Guard<Arc<Connection>> {
        let watch = &*self.0;
        let current = watch.current.load();
        match &watch.client {
            Some((client, statistics)) => {
                let connects = statistics.connects.load(Ordering::Relaxed);
                if connects == current.connects {
                    current
                } else {
                    drop(current);
                    watch.reconnected(client, connects);
                    watch.current.load()
                }
            }
            None => current,
        }
    }
}

impl Watch {
    #[cold]
    fn reconnected(&self, client: &Client, connects: u64) {
        let mut awaiting = self.awaiting_info.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current.load();
        if current.connects == connects {
            return; // Another span got here first.
        }
        let info = client.server_info();
        if let Some(next) = next_connection(&current, &info, connects, &mut awaiting, Instant::now()) {
            self.current.store(Arc::new(next));
        }
    }
}

/// The connection to record once the client counted `connects` connections
/// and its `INFO` is `info`; `None` to keep `current` for now.
///
/// async-nats counts a connection before it publishes the server's `INFO`, so
/// for a moment the `INFO` is still the old connection's: `current` is kept,
/// and the `INFO` read again for the next span (`awaiting` remembers since
/// when). If the same `INFO` stays past [`INFO_GRACE`], it was the new
/// connection's all along: `current` was read while the client was connecting.
fn next_connection(
    current: &Connection,
    info: &ServerInfo,
    connects: u64,
    awaiting: &mut Option<(u64, Instant)>,
    now: Instant,
) -> Option<Connection> {
    let settled = match *awaiting {
        _ if !current.is(info) => true,
        Some((counted, since)) if counted == connects => now.duration_since(since) >= INFO_GRACE,
        _ => {
            *awaiting = Some((connects, now));
            false
        }
    };
    settled.then(|| {
        *awaiting = None;
        Connection::of(info, connects)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(connection: &Connection, deprecated: bool) -> Vec<(String, String)> {
        let mut attributes = Vec::new();
        connection.extend(&mut attributes, deprecated);
        assert!(attributes.len() <= Connection::MAX_ATTRIBUTES);
        attributes.into_iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()
    }

    #[test]
    fn a_connection_is_recorded_by_id_address_and_port() {
        let peer = Peer::fixed(7, "10.0.0.1", 4222);
        let expected =
            [("messaging.client.id", "7"), ("server.address", "10.0.0.1"), ("server.port", "4222")];
        let pairs =
            |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(values(&peer.current(), false), pairs(&expected));
        let mut deprecated = expected.to_vec();
        deprecated.extend([("net.peer.name", "10.0.0.1"), ("net.peer.port", "4222")]);
        assert_eq!(values(&peer.current(), true), pairs(&deprecated));
    }

    fn info(server_id: &str, client_id: u64, port: u16) -> ServerInfo {
        ServerInfo {
            server_id: server_id.to_owned(),
            client_id,
            host: "127.0.0.1".to_owned(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn a_new_connection_is_taken_as_soon_as_its_info_shows() {
        let current = Connection::of(&info("A", 5, 4222), 1);
        let mut awaiting = None;
        let now = Instant::now();
        // Another server, or another connection to the same one.
        for new in [info("B", 5, 4223), info("A", 6, 4222)] {
            let next = next_connection(&current, &new, 2, &mut awaiting, now).unwrap();
            assert!(next.is(&new));
            assert_eq!((next.connects, next.port()), (2, Some(new.port)));
            assert_eq!(next.client_id_value.as_str(), new.client_id.to_string());
            assert_eq!(awaiting, None);
        }
    }

    #[test]
    fn a_connection_counted_before_its_info_keeps_the_old_one_until_the_info_shows() {
        let current = Connection::of(&info("A", 5, 4222), 1);
        let old = info("A", 5, 4222);
        let mut awaiting = None;
        let start = Instant::now();
        assert!(next_connection(&current, &old, 2, &mut awaiting, start).is_none());
        assert_eq!(awaiting, Some((2, start)));
        let soon = start + INFO_GRACE / 2;
        assert!(next_connection(&current, &old, 2, &mut awaiting, soon).is_none());
        assert_eq!(awaiting, Some((2, start)), "the wait is timed from the first look");
        let new = info("B", 1, 4223);
        let next = next_connection(&current, &new, 2, &mut awaiting, soon).unwrap();
        assert!(next.is(&new));
        assert_eq!(awaiting, None);
    }

    #[test]
    fn an_info_that_stays_the_same_past_the_grace_is_the_new_connections() {
        let current = Connection::of(&info("A", 5, 4222), 1);
        let same = info("A", 5, 4222);
        let mut awaiting = None;
        let start = Instant::now();
        assert!(next_connection(&current, &same, 2, &mut awaiting, start).is_none());
        let next = next_connection(&current, &same, 2, &mut awaiting, start + INFO_GRACE).unwrap();
        assert_eq!(next.connects, 2, "no longer asked for every span");
        assert_eq!(awaiting, None);
        // A later reconnection waits afresh.
        assert!(next_connection(&next, &same, 3, &mut awaiting, start + INFO_GRACE * 2).is_none());
        assert_eq!(awaiting, Some((3, start + INFO_GRACE * 2)));
    }

    #[test]
    fn an_unknown_address_or_port_is_left_out() {
        let peer = Peer::fixed(7, "", 0);
        assert_eq!(values(&peer.current(), true), [("messaging.client.id".to_owned(), "7".to_owned())]);
    }
}
