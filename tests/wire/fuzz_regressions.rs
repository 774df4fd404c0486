//! The fuzz targets' inputs as regression tests: every seed (`fuzz/seeds/<target>/`) and every
//! kept crash input (`fuzz/regressions/<target>/`) goes through the target's body in
//! `paf::fuzzing`, the same function the libFuzzer binary in `fuzz/` calls. A crash found by
//! `make fuzz` is fixed, then its input is committed under `fuzz/regressions/<target>/` (named
//! after what it found) so that it is replayed here by every `cargo test`.
//!
//! Also: every target in `paf::fuzzing::TARGETS` has a fuzz binary and seeds, and the recorded
//! TCP sessions among the `stack_frames` seeds still reach an established, echoing connection
//! (they replay only while the stack's behaviour is unchanged; re-record them with
//! `cargo test --test wire -- --ignored fuzz_regressions::record_stack_sessions`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use paf::fuzzing::{self, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none when the folder does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every seed and regression input of `target`; fails naming each input that panicked.
fn replay(target: &str) {
    let (_, body) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut failed = Vec::new();
    let mut count = 0;
    for path in seeds.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(path).expect("readable input");
        count += 1;
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {count} inputs failed: {failed:#?}",
        failed.len()
    );
}

#[test]
fn request_head_inputs() {
    replay("request_head");
}

#[test]
fn chunked_body_inputs() {
    replay("chunked_body");
}

#[test]
fn server_stream_inputs() {
    replay("server_stream");
}

#[test]
fn h2_server_inputs() {
    replay("h2_server");
}

#[test]
fn h2_client_inputs() {
    replay("h2_client");
}

#[test]
fn client_response_inputs() {
    replay("client_response");
}

#[test]
fn config_inputs() {
    replay("config");
}

#[test]
fn stack_frames_inputs() {
    replay("stack_frames");
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_test_here() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let this = std::fs::read_to_string(file!()).expect("this file");
    for (name, _) in TARGETS {
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let src = std::fs::read_to_string(&bin).unwrap_or_else(|_| panic!("no {}", bin.display()));
        assert!(
            src.contains(&format!("paf::fuzzing::{name}(")),
            "{name}: the binary calls its body"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} in fuzz/Cargo.toml"
        );
        assert!(
            this.contains(&format!("replay(\"{name}\")")),
            "{name} replayed here"
        );
    }
}

#[test]
fn recorded_stack_sessions_reach_an_echoing_connection() {
    let sessions: Vec<PathBuf> = inputs("seeds", "stack_frames")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("session_"))
        })
        .collect();
    assert!(sessions.len() >= 2, "the recorded sessions are missing");
    for path in sessions {
        let report = fuzzing::stack_frames(&std::fs::read(&path).expect("readable"));
        assert!(
            report.accepted == 1 && report.echoed >= SESSION_PAYLOAD.len(),
            "{} no longer replays (re-record it): {report:?}",
            path.display()
        );
    }
}

/// What the recorded sessions send (and get echoed).
const SESSION_PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n";

/// Writes `fuzz/seeds/stack_frames/session_{v4,v6}`: a real exchange with a second stack,
/// recorded so that it replays (see `paf::fuzzing::stack_session`).
#[test]
#[ignore = "writes seeds: run by hand after a change to the stack's TCP behaviour"]
fn record_stack_sessions() {
    for (name, ipv6) in [("session_v4", false), ("session_v6", true)] {
        let input = fuzzing::stack_session(ipv6, SESSION_PAYLOAD);
        let report = fuzzing::stack_frames(&input);
        assert_eq!(report.accepted, 1, "{name}: {report:?}");
        assert!(report.echoed >= SESSION_PAYLOAD.len(), "{name}: {report:?}");
        let path = fuzz_dir().join("seeds/stack_frames").join(name);
        std::fs::write(&path, input).expect("write the seed");
    }
}
