//! The userspace stack fed arbitrary Ethernet frames (length-prefixed) on a virtual clock.
//! The body is `paf::fuzzing::stack_frames`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::stack_frames(data);
});
