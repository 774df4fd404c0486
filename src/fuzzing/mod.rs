//! The bodies of the fuzz targets in `fuzz/` (libFuzzer through cargo-fuzz). **For fuzz harnesses
//! and their regression tests only**: not part of paf's API, hidden from the docs, free to change.
//!
//! Each target in `fuzz/fuzz_targets/` is one line calling the function of the same name here, and
//! `tests/wire/fuzz_regressions.rs` replays every seed (`fuzz/seeds/<target>/`) and every kept crash
//! input (`fuzz/regressions/<target>/`) through the same function, so a regression test runs
//! exactly the code the fuzzer ran. A function panics when an invariant breaks; it must not
//! panic, loop without bound or allocate without bound on any other input.
//!
//! The targets ([`TARGETS`]):
//!
//! - [`request_head`]: the request head scanner and parser directly, the same input whole and in
//!   pieces (same outcome), a parsed head serialized and parsed again (same request);
//! - [`chunked_body`]: the chunked decoder directly, whole against split with a varying output
//!   budget (same payload, same outcome), then through the server codec;
//! - [`server_stream`]: the whole server codec on a byte stream split at arbitrary points,
//!   answering every request, until EOF and every timer;
//! - [`client_response`]: the client codec reading an arbitrary response stream;
//! - `h2_client`: the HTTP/2 client codec with three requests in flight reading an arbitrary
//!   server frame stream;
//! - [`config`]: the appliance config parser and validator on arbitrary text;
//! - [`stack_frames`]: the userspace stack fed arbitrary Ethernet frames on a virtual clock.

mod h2_client;
mod http;
mod stack;

pub use self::h2_client::h2_client;
pub use self::http::{chunked_body, client_response, h2_server, request_head, server_stream};
pub use self::stack::{stack_frames, stack_session, FrameReport};

/// The body of a target: one input, a panic when an invariant breaks.
pub type Body = fn(&[u8]);

/// Every target: its name (the file in `fuzz/fuzz_targets/`, the folder under `fuzz/seeds/` and
/// `fuzz/regressions/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("request_head", request_head),
    ("chunked_body", chunked_body),
    ("server_stream", server_stream),
    ("h2_server", h2_server),
    ("client_response", client_response),
    ("h2_client", h2_client),
    ("config", config),
    ("stack_frames", |data| {
        stack_frames(data);
    }),
];

/// The appliance config parser and validator ([`crate::config::parse`]) on arbitrary text.
/// Invalid text must come back as errors (at least one, lines within the text), never a panic;
/// a config that validates keeps the promises the appliance relies on: unique listener names and
/// ports, unique upstream names, each with a URL, and proxy routes naming an existing upstream.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent")) {
        Ok(c) => {
            let mut names = std::collections::HashSet::new();
            let mut ports = std::collections::HashSet::new();
            for l in &c.listeners {
                assert!(names.insert(&l.name), "duplicate listener {:?}", l.name);
                assert!(ports.insert(l.port), "duplicate port {}", l.port);
                for r in &l.routes {
                    if let crate::config::Action::Proxy { upstream, .. } = r.action {
                        assert!(upstream < c.upstreams.len(), "dangling upstream {upstream}");
                    }
                }
            }
            let mut upstreams = std::collections::HashSet::new();
            for u in &c.upstreams {
                assert!(upstreams.insert(&u.name), "duplicate upstream {:?}", u.name);
                assert!(!u.urls.is_empty(), "upstream {:?} without URLs", u.name);
            }
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "parse failed without an error");
            let lines = text.lines().count() + 1;
            for err in &e.errors {
                assert!(err.line.is_none_or(|l| (1..=lines).contains(&l)), "{err:?}");
            }
            let _ = e.to_string();
        }
    }
}
