//! The appliance config parser and validator on arbitrary text.
//! The body is `paf::fuzzing::config`, which tests/wire/fuzz_regressions.rs replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paf::fuzzing::config(data);
});
