//! The HTTP/2 client codec (h2 behind paf's client codec surface) with three requests in
//! flight on an arbitrary server stream, split at arbitrary points. The body is
//! `paf::fuzzing::h2_client`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::h2_client(data);
});
