//! The HTTP/2 server codec (h2 behind paf's codec surface) on an arbitrary frame stream after
//! the client preface, split at arbitrary points. The body is `paf::fuzzing::h2_server`, which
//! tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::h2_server(data);
});
