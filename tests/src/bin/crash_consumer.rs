//! A `#[jetstream_consumer]` service run as a child process by the crash test
//! (`tests/tests/reliability.rs`), which kills it with SIGKILL mid-stream and
//! starts it again.
//!
//! Each message processed is written to stdout as `{id} {stream sequence}
//! {delivery count}` before the handler returns `Ok`, so before the ack is sent:
//! once `write` returns, the line is in the pipe, and a SIGKILL cannot take it
//! back. What the test reads is therefore a lower bound of what was acked, and
//! every id acked has been recorded.
//!
//! Environment: `NATS_URL`. The service stops gracefully when stdin closes.

use std::io::Write;

use nats_otel_runtime::prelude::*;
use tokio::io::AsyncReadExt;

#[derive(Deserialize)]
struct Item {
    id: u64,
}

/// On the stream `CRASH` the test creates. Slow enough (2 ms, 8 at a time) that
/// the test's kill lands mid-stream; up to 64 messages (one pull) are delivered
/// but unacked at any time.
#[jetstream_consumer(
    stream = "CRASH",
    durable = "crash",
    ack_wait = "3s",
    max_ack_pending = 64,
    concurrency = 8
)]
async fn record(Json(item): Json<Item>, info: JetStreamInfo) -> Result<(), ServiceError> {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    write_record(item.id, info.stream_sequence, info.delivered)
        .map_err(|e| ServiceError::new(500, format!("cannot record {}: {e}", item.id)))
}

/// One `write` of the whole line, flushed: recorded before the handler returns.
fn write_record(id: u64, sequence: u64, delivered: i64) -> std::io::Result<()> {
    let line = format!("{id} {sequence} {delivered}\n");
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.flush()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").map_err(|_| "NATS_URL is not set")?;
    let client = async_nats::connect(url).await?;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while matches!(stdin.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    NatsService::new(client).handler(record).run_until(stdin_closed).await?;
    Ok(())
}
