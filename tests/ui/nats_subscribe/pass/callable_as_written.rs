use nats_otel_runtime::prelude::*;

#[nats_subscribe("math.double")]
async fn double(Json(n): Json<i64>) -> Json<i64> {
    Json(n * 2)
}

#[nats_subscribe("generic.state")]
async fn generic<T: Clone + Send + Sync + 'static>(State(_t): State<T>) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Json(n) = double(Json(21)).await;
    assert_eq!(n, 42);
    generic(State(5_u8)).await;
}
