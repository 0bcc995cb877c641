//! Compile-time checks of the macros: one condition per file, committed `.stderr`.
//!
//! The expected output is for the toolchain this repository builds with; after a
//! deliberate change, regenerate with `TRYBUILD=overwrite` and review the diff.

#[test]
fn nats_subscribe() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/nats_subscribe/pass/*.rs");
    cases.compile_fail("ui/nats_subscribe/fail/*.rs");
}

#[test]
fn jetstream_consumer() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/jetstream_consumer/pass/*.rs");
    cases.compile_fail("ui/jetstream_consumer/fail/*.rs");
    // `#[kv_watch]`, a consumer of a bucket's stream: shares this build.
    cases.pass("ui/kv_watch/pass/*.rs");
    cases.compile_fail("ui/kv_watch/fail/*.rs");
}

#[test]
fn nats_message() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/nats_message/pass/*.rs");
    cases.compile_fail("ui/nats_message/fail/*.rs");
    // `service_name!` and `service_version!`: small enough to share this build.
    cases.pass("ui/service_identity/pass/*.rs");
    cases.compile_fail("ui/service_identity/fail/*.rs");
}
