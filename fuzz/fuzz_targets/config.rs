//! The appliance config parser and validator on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = paf::config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent")) {
            assert!(!e.errors.is_empty());
            let _ = e.to_string();
        }
    }
});
