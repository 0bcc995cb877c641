//! "Nothing lost", from the server's own state: every message a consumer was
//! given is acked, given up with its dead letter stored, or still pending.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures_util::StreamExt;

/// Watches one durable consumer's terminations and exhausted deliveries, as the
/// server announces them in its advisories, and accounts for every message the
/// consumer's filters select.
///
/// Start it before the messages are handled: advisories are not stored.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) -> Result<(), nats_otel_runtime::testing::LedgerError> {
/// use nats_otel_runtime::testing::Ledger;
/// let ledger = Ledger::watch(&client, "ORDERS", "billing").await?;
/// // … run the service, publish, then wait until the accounts are settled …
/// let accounts = loop {
///     let accounts = ledger.account(Some("DEAD")).await?;
///     if accounts.is_settled() {
///         break accounts;
///     }
///     tokio::time::sleep(std::time::Duration::from_millis(100)).await;
/// };
/// accounts.assert_nothing_lost();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Ledger {
    client: async_nats::Client,
    stream: String,
    consumer: String,
    announced: Arc<Mutex<Announced>>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Announced {
    terminated: BTreeSet<u64>,
    exhausted: BTreeSet<u64>,
}

/// Where each message of a consumer's stream stands, by stream sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// Settled (at or below the ack floor, or delivered with no ack pending),
    /// neither termed nor exhausted.
    pub acked: Vec<u64>,
    /// Termed or exhausted, and its dead letter is stored.
    pub dead_lettered: Vec<u64>,
    /// Above the ack floor: the consumer still owes a delivery or an ack.
    pub pending: Vec<u64>,
    /// Out of deliveries (the server's `MAX_DELIVERIES` advisory) with no
    /// stored letter yet: the service writes it once the same advisory reaches
    /// it, so for a moment this is not a loss. Lost if it stays.
    pub letter_due: Vec<u64>,
    /// Termed with no stored letter (the service terms a message only once its
    /// letter is stored): lost.
    pub lost: Vec<u64>,
    /// Letters found for this consumer, by the sequence they carry (more than
    /// one letter per message would show here as a count above 1).
    pub letters: BTreeMap<u64, usize>,
}

impl Accounts {
    /// Whether nothing is still under way: no message pending, no letter due.
    /// Wait for it before [`assert_nothing_lost`](Self::assert_nothing_lost).
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty() && self.letter_due.is_empty()
    }

    /// Panics with the accounts when a message is lost, its letter is still
    /// due, or it has two letters.
    #[allow(clippy::panic)]
    pub fn assert_nothing_lost(&self) {
        if !self.lost.is_empty() {
            panic!("messages termed without a stored dead letter: {:?}\n{self}", self.lost);
        }
        if !self.letter_due.is_empty() {
            panic!(
                "messages out of deliveries whose dead letter is not stored: {:?}\n{self}",
                self.letter_due
            );
        }
        if let Some((sequence, count)) = self.letters.iter().find(|(_, count)| **count > 1) {
            panic!("message {sequence} has {count} dead letters\n{self}");
        }
    }
}

impl fmt::Display for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acked {:?}, dead-lettered {:?}, pending {:?}, letter due {:?}, lost {:?}",
            self.acked, self.dead_lettered, self.pending, self.letter_due, self.lost
        )
    }
}

/// What can stop an account being made.
pub type LedgerError = Box<dyn std::error::Error + Send + Sync>;

impl Ledger {
    /// Subscribes to the consumer's `MSG_TERMINATED` and `MAX_DELIVERIES`
    /// advisories; returns once the server has registered both.
    pub async fn watch(
        client: &async_nats::Client,
        stream: &str,
        consumer: &str,
    ) -> Result<Self, LedgerError> {
        let announced = Arc::new(Mutex::new(Announced::default()));
        let mut watchers = Vec::new();
        for (kind, exhausted) in [("MSG_TERMINATED", false), ("MAX_DELIVERIES", true)] {
            let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{kind}.{stream}.{consumer}");
            let mut advisories = client.subscribe(subject).await?;
            let announced = announced.clone();
            watchers.push(tokio::spawn(async move {
                #[derive(serde::Deserialize)]
                struct Advisory {
                    stream_seq: u64,
                }
                while let Some(advisory) = advisories.next().await {
                    let Ok(advisory) = serde_json::from_slice::<Advisory>(&advisory.payload) else {
                        continue;
                    };
                    if let Ok(mut announced) = announced.lock() {
                        let set =
                            if exhausted { &mut announced.exhausted } else { &mut announced.terminated };
                        set.insert(advisory.stream_seq);
                    }
                }
            }));
        }
        client.flush().await?;
        Ok(Self {
            client: client.clone(),
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            announced,
            watchers,
        })
    }

    /// Sequences the server announced as termed.
    pub fn terminated(&self) -> BTreeSet<u64> {
        self.announced.lock().map(|a| a.terminated.clone()).unwrap_or_default()
    }

    /// Sequences the server announced as out of deliveries.
    pub fn exhausted(&self) -> BTreeSet<u64> {
        self.announced.lock().map(|a| a.exhausted.clone()).unwrap_or_default()
    }

    /// Accounts for every message of the stream that the consumer's filters
    /// select; letters are looked for in `dead_letter_stream`.
    pub async fn account(&self, dead_letter_stream: Option<&str>) -> Result<Accounts, LedgerError> {
        let js = jetstream::new(self.client.clone());
        let mut stream = js.get_stream(&self.stream).await?;
        let consumer: PullConsumer = stream.get_consumer(&self.consumer).await?;
        let mut consumer = consumer;
        let info = consumer.info().await?.clone();
        let config = info.config.clone();
        // Settled up to here: the ack floor, or everything delivered when nothing
        // awaits an ack (the floor can lag behind a message given up).
        let ack_floor = if info.num_ack_pending == 0 {
            info.delivered.stream_sequence.max(info.ack_floor.stream_sequence)
        } else {
            info.ack_floor.stream_sequence
        };
        let filters: Vec<String> = if config.filter_subjects.is_empty() {
            Some(config.filter_subject.clone()).filter(|f| !f.is_empty()).into_iter().collect()
        } else {
            config.filter_subjects.clone()
        };
        let state = stream.info().await?.state.clone();

        // Read before the letters: a message is termed only once its letter is
        // stored, so every message given up by now has its letter among those
        // read next. (Read after, a message termed in between looked lost.)
        let (terminated, exhausted) = {
            let announced = self.announced.lock().map_err(|_| "ledger lock poisoned")?;
            (announced.terminated.clone(), announced.exhausted.clone())
        };
        let mut letters = BTreeMap::new();
        if let Some(name) = dead_letter_stream {
            let dead = js.get_stream(name).await?;
            let last = dead.clone().info().await?.state.last_sequence;
            for sequence in 1..=last {
                let Ok(letter) = dead.get_raw_message(sequence).await else { continue };
                let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
                if header(crate::jetstream::dead_letter::headers::STREAM).as_deref()
                    == Some(self.stream.as_str())
                    && header(crate::jetstream::dead_letter::headers::CONSUMER).as_deref()
                        == Some(self.consumer.as_str())
                    && let Some(of) = header(crate::jetstream::dead_letter::headers::STREAM_SEQUENCE)
                        .and_then(|s| s.parse::<u64>().ok())
                {
                    *letters.entry(of).or_insert(0) += 1;
                }
            }
        }

        let mut accounts = Accounts { letters, ..Accounts::default() };
        for sequence in state.first_sequence..=state.last_sequence {
            // Read as stored: a header block no client can parse is still a message.
            let Ok(message) =
                crate::jetstream::dead_letter::fetch(&self.client, &self.stream, sequence).await
            else {
                continue;
            };
            if !filters.is_empty() && !filters.iter().any(|f| nats_otel_rules::matches(f, &message.subject)) {
                continue;
            }
            let (termed, out_of_deliveries) = (terminated.contains(&sequence), exhausted.contains(&sequence));
            if termed || out_of_deliveries {
                if accounts.letters.contains_key(&sequence) {
                    accounts.dead_lettered.push(sequence);
                } else if termed {
                    accounts.lost.push(sequence);
                } else {
                    accounts.letter_due.push(sequence);
                }
            } else if sequence <= ack_floor {
                accounts.acked.push(sequence);
            } else {
                accounts.pending.push(sequence);
            }
        }
        Ok(accounts)
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
    }
}
