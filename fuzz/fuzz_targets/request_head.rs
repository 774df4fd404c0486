//! The request head scanner and parser: whole against split, round trip.
//! The body is `paf::fuzzing::request_head`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::request_head(data);
});
