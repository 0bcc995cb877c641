use nats_otel_runtime::prelude::*;

#[derive(NatsMessage)]
#[nats(subject = "images.{size}", codec = "raw")]
struct Image {
    size: u32,
    data: Bytes,
}

fn main() {}
