//! The client codec reading an arbitrary response stream.
//! The body is `paf::fuzzing::client_response`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::client_response(data);
});
