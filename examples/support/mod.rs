//! Shared by the examples: two userspace stacks joined by the in-memory wire, and a one-shot
//! `GET` over paf's raw test client (until paf's own HTTP client is there).

#![allow(dead_code)] // each example uses a part

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use net::device::{wire, Device, Faults, Link};
use paf::service::testing::{parse_response, ParsedResponse, RawClient};
use paf::Runtime;

/// The server's address on the wire (stack B).
pub const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(net::testing::B_V4), 80);

/// The two ends of a fresh wire: (client end, server end).
pub fn wire() -> (wire::WireEnd, wire::WireEnd) {
    wire::pair(1500, Faults::default(), Faults::default(), 1)
}

/// A runtime around a userspace stack on `end`: the client (198.18.0.1) or the server
/// (198.18.0.2).
pub fn runtime(client: bool, end: wire::WireEnd) -> Runtime {
    let config = net::testing::config(client, 1);
    let stack = net::Stack::new(config, Device::new(Link::Wire(end)), Instant::now())
        .expect("valid stack configuration");
    Runtime::new(Box::new(stack)).expect("event loop")
}

/// `GET path` on a new connection to `to`, driving `rt` until the response or `timeout`.
///
/// # Errors
/// The connection was refused or reset, or no response came in time.
pub fn get(
    rt: &mut Runtime,
    to: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<ParsedResponse, String> {
    let c = RawClient::connect(rt, to).map_err(|e| e.to_string())?;
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        buf.extend_from_slice(&c.take_input());
        if let Some((r, _)) = parse_response(&buf, false) {
            return Ok(r);
        }
        if c.is_reset() {
            return Err("connection refused or reset".to_owned());
        }
        if c.is_done() || Instant::now() >= deadline {
            return Err("no response".to_owned());
        }
        rt.turn(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
    }
}
