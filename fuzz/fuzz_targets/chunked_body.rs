//! The chunked body decoder (whole against split), then through the server codec.
//! The body is `paf::fuzzing::chunked_body`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::chunked_body(data);
});
