//! The connection spans describe (`messaging.client.id`, `server.address`,
//! `server.port`), followed across reconnections: after a failover the client
//! talks to another server, under a client id that server assigned.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwapOption, Guard};
use async_nats::{Client, ServerInfo, Statistics};
use opentelemetry::{KeyValue, StringValue};

use crate::otel::semconv;
use crate::otel::spans::intern;

/// How long a reconnection may be counted before its server's `INFO` shows;
/// past it, the `INFO` held is taken to be the new connection's.
const INFO_GRACE: Duration = Duration::from_secs(1);

/// How many client ids the process interns: a few hundred KiB at most, for
/// clients that reconnect thousands of times.
const INTERNED_CLIENT_IDS: usize = 4096;

/// A client id as spans record it: interned, as the other attributes of an
/// endpoint are (see [`intern`]), for the first [`INTERNED_CLIENT_IDS`]
/// connections; past them, shared by reference count, so that a client that
/// keeps reconnecting does not keep growing the process.
fn client_id_value(id: u64) -> StringValue {
    static INTERNED: AtomicUsize = AtomicUsize::new(0);
    let id = id.to_string();
    if INTERNED.fetch_add(1, Ordering::Relaxed) < INTERNED_CLIENT_IDS {
        StringValue::from(intern(&id))
    } else {
        StringValue::from(Arc::<str>::from(id))
    }
}

/// One connection, as spans record it.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The client's connection count when this was read.
    connects: u64,
    /// With `client_id`, what tells one connection from another: client ids
    /// are only unique on one server.
    server_id: String,
    client_id: u64,
    /// `client_id` as recorded.
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
            client_id_value: client_id_value(info.client_id),
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

    /// How many attributes [`extend`](Self::extend) appends.
    pub(crate) fn len(&self, deprecated: bool) -> usize {
        let server = usize::from(self.address.is_some()) + usize::from(self.port.is_some());
        1 + server * (1 + usize::from(deprecated))
    }
}

/// A value made for one connection of a client (its attributes, instruments
/// bound to them), made again after the client reconnects.
///
/// The value for the first connection is held inline, so until the client
/// reconnects, reading it costs a comparison; later ones are swapped in
/// atomically and read without a shared lock or counter.
#[derive(Debug)]
pub(crate) struct PerConnection<T> {
    /// The client's connection count the value was made for, and the value.
    first: (u64, T),
    later: ArcSwapOption<(u64, T)>,
}

/// A value made after a reconnection, with the connection count it is for.
type Later<T> = Option<Arc<(u64, T)>>;

/// A value of a [`PerConnection`], borrowed.
#[derive(Debug)]
pub(crate) struct Current<'a, T> {
    first: &'a T,
    later: Option<Guard<Later<T>>>,
}

impl<T> Deref for Current<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.later.as_ref().and_then(|later| later.as_deref()) {
            Some((_, value)) => value,
            None => self.first,
        }
    }
}

impl<T> PerConnection<T> {
    pub(crate) fn new(connects: u64, value: T) -> Self {
        Self { first: (connects, value), later: ArcSwapOption::empty() }
    }

    /// The value made for the first connection.
    pub(crate) fn first(&self) -> &T {
        &self.first.1
    }

    /// The value for connection `connects`: made by `make` from the latest
    /// value when there is none yet; the latest value when `make` gives none.
    pub(crate) fn get(&self, connects: u64, make: impl FnOnce(&T) -> Option<T>) -> Current<'_, T> {
        match self.get_first(connects) {
            Some(first) => first,
            None => self.get_later(connects, make),
        }
    }

    /// The first value, if it was made for connection `connects`.
    #[inline]
    pub(crate) fn get_first(&self, connects: u64) -> Option<Current<'_, T>> {
        (connects == self.first.0).then_some(Current { first: &self.first.1, later: None })
    }

    fn get_later(&self, connects: u64, make: impl FnOnce(&T) -> Option<T>) -> Current<'_, T> {
        let later = self.later.load();
        if later.as_deref().is_some_and(|(made_for, _)| *made_for == connects) {
            return Current { first: &self.first.1, later: Some(later) };
        }
        self.remake(connects, later, make)
    }

    #[cold]
    fn remake(
        &self,
        connects: u64,
        later: Guard<Later<T>>,
        make: impl FnOnce(&T) -> Option<T>,
    ) -> Current<'_, T> {
        let latest = later.as_deref().map_or(&self.first.1, |(_, value)| value);
        let later = match make(latest) {
            Some(value) => {
                drop(later);
                self.later.store(Some(Arc::new((connects, value))));
                self.later.load()
            }
            None => later,
        };
        Current { first: &self.first.1, later: Some(later) }
    }
}

/// The current connection of a client, cheap to read for every span: one
/// atomic load tells whether the client reconnected since it was last read.
#[derive(Debug, Clone)]
pub(crate) struct Peer(Arc<Watch>);

#[derive(Debug)]
struct Watch {
    /// `None` for a fixed connection (unit tests).
    client: Option<(Client, Arc<Statistics>)>,
    connections: PerConnection<Connection>,
    /// A connection counted whose `INFO` was not there yet, and since when.
    awaiting_info: Mutex<Option<(u64, Instant)>>,
}

impl Peer {
    pub(crate) fn of(client: &Client) -> Self {
        let statistics = client.statistics();
        let connects = statistics.connects.load(Ordering::Relaxed);
        let first = Connection::of(&client.server_info(), connects);
        Self(Arc::new(Watch {
            client: Some((client.clone(), statistics)),
            connections: PerConnection::new(connects, first),
            awaiting_info: Mutex::new(None),
        }))
    }

    /// A connection that never changes.
    #[cfg(test)]
    pub(crate) fn fixed(client_id: u64, host: &str, port: u16) -> Self {
        let info = ServerInfo { client_id, host: host.to_owned(), port, ..ServerInfo::default() };
        Self(Arc::new(Watch {
            client: None,
            connections: PerConnection::new(1, Connection::of(&info, 1)),
            awaiting_info: Mutex::new(None),
        }))
    }

    /// How many times the client has connected.
    #[inline]
    pub(crate) fn connects(&self) -> u64 {
        match &self.0.client {
            Some((_, statistics)) => statistics.connects.load(Ordering::Relaxed),
            None => self.0.connections.first.0,
        }
    }

    /// The connection now: read again after the client reconnected.
    pub(crate) fn current(&self) -> Current<'_, Connection> {
        let watch = &*self.0;
        let Some((client, statistics)) = &watch.client else {
            return watch.connections.get(watch.connections.first.0, |_| None);
        };
        let connects = statistics.connects.load(Ordering::Relaxed);
        watch.connections.get(connects, |latest| {
            let mut awaiting = watch.awaiting_info.lock().unwrap_or_else(PoisonError::into_inner);
            next_connection(latest, &client.server_info(), connects, &mut awaiting, Instant::now())
        })
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
        assert_eq!(attributes.len(), connection.len(deprecated));
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
    fn a_value_per_connection_is_made_once_for_each_and_kept_until_made() {
        let values = PerConnection::new(1, "first");
        let made = std::cell::Cell::new(0);
        let made = &made;
        let make = |value| {
            move |_: &&str| {
                made.set(made.get() + 1);
                value
            }
        };
        assert_eq!(*values.get(1, make(Some("unused"))), "first");
        assert_eq!(made.get(), 0, "the first connection's value is there");
        assert_eq!(*values.get(2, make(None)), "first", "not made yet: the latest");
        assert_eq!(*values.get(2, make(Some("second"))), "second");
        assert_eq!(*values.get(2, make(Some("unused"))), "second");
        assert_eq!(made.get(), 2, "made once it could be, then kept");
        assert_eq!(*values.get(3, make(None)), "second");
        assert_eq!(*values.first(), "first");
    }

    #[test]
    fn an_unknown_address_or_port_is_left_out() {
        let peer = Peer::fixed(7, "", 0);
        assert_eq!(values(&peer.current(), true), [("messaging.client.id".to_owned(), "7".to_owned())]);
    }
}
