//! The whole HTTP/1.1 server codec on an arbitrary byte stream split at arbitrary points.
//! The body is `paf::fuzzing::server_stream`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::server_stream(data);
});
