//! Limits and timeouts of the HTTP/1.1 and HTTP/2 server codecs.
//!
//! One [`Config`] is shared (behind an `Arc`) by every connection of a listener. The defaults are
//! close to nginx's so that paf and nginx reject the same abuse with the same status codes.

use std::time::Duration;

/// Limits and timeouts for [`ServerConn`](super::ServerConn).
///
/// Every limit maps to one status code (see [`Error::status`](super::Error::status)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How much unconsumed input the caller should offer to `handle_input` at once.
    ///
    /// The codec copies partial request heads, so any size works; larger sizes mean fewer calls.
    pub read_buffer_size: usize,
    /// Request line plus header fields, in bytes; beyond it the request gets 431 (or 414 when the
    /// request line alone is longer than `max_request_line`).
    pub max_head_size: usize,
    /// Request line length in bytes (without CRLF); beyond it the request gets 414.
    pub max_request_line: usize,
    /// Number of header fields; beyond it the request gets 431.
    pub max_headers: usize,
    /// Largest accepted request body; `None` means unlimited. Beyond it the request gets 413
    /// (at once for `Content-Length`, when the limit is crossed for chunked bodies).
    pub max_body_size: Option<u64>,
    /// Decoded request-body bytes buffered per exchange before the codec stops consuming input.
    pub body_buffer_size: usize,
    /// Pending output cap: `write_body` accepts no more once this much output is queued.
    pub response_buffer_size: usize,
    /// Bytes of chunked trailer section accepted (trailers are validated and dropped); beyond it
    /// the request gets 431.
    pub max_trailer_size: usize,
    /// Request body bytes the codec reads and drops after a response finished without the handler
    /// reading the whole body; beyond it the connection closes instead.
    pub discard_body_limit: u64,
    /// Requests parsed ahead of the one being answered; beyond it the codec stops consuming input.
    pub max_pipelined: usize,
    /// A request head must be complete within this time since its first byte (or since the
    /// connection opened, for the first request); else 408 and close.
    pub head_timeout: Duration,
    /// An idle keep-alive connection (nothing in flight, no partial request) closes silently after
    /// this time.
    pub idle_timeout: Duration,
    /// Longest pause between request body bytes while the codec wants them; else 408 and close.
    pub body_timeout: Duration,
    /// Longest time with pending output and no transmit progress; else the connection closes.
    pub write_timeout: Duration,
    /// How long [`ServerConn::shutdown`](super::ServerConn::shutdown) lets in-flight exchanges
    /// finish before the connection closes regardless.
    pub drain_timeout: Duration,
    /// Value of the `Server:` header added to responses that do not set one; `None` adds none.
    pub server_name: Option<String>,
    /// On a plain-text service: a connection that starts with the HTTP/2 preface is served as
    /// HTTP/2 (h2c with prior knowledge, RFC 9113 §3.3); `false` keeps it HTTP/1.1 (505).
    pub h2c: bool,
    /// HTTP/2: streams the peer may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Limits per client address, enforced by the service (not by the codecs) in its
    /// [`ClientTable`](crate::service::ClientTable), which services may share.
    pub per_client: PerClient,
    /// PROXY protocol (v1 or v2) expected before each connection's first byte, from these
    /// sources only: a connection from anywhere else is reset at accept, one whose header is
    /// missing or malformed is reset when it comes. The header's source is then the client
    /// (logs, limits, `X-Forwarded-For`). `None`: no PROXY protocol. Enforced by the service.
    pub proxy_protocol: Option<std::sync::Arc<[Cidr]>>,
}

/// An address block: `198.18.0.0/15`, `fd00:198:18::/64`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The block's address (bits past the prefix are ignored).
    pub addr: std::net::IpAddr,
    /// Leading bits that must match (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a block of one).
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: std::net::IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or address/prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0..={max}"))?
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(a) => a.to_ipv4_mapped().map_or(V6(a), V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(n), V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Limits per client address (an IPv4 address, or an IPv6 /64), enforced by the service: see
/// [`service`](crate::service) for how they answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerClient {
    /// Connections a client may have open at once; more are reset at accept. `None`: no cap.
    pub max_connections_per_ip: Option<u32>,
    /// Requests a client may make (HTTP/1.1 requests and HTTP/2 streams alike); beyond it
    /// they are answered `429 Too Many Requests` with `Retry-After`. `None`: no limit.
    pub rate: Option<Rate>,
    /// The longest a client's new connections wait before paf reads them, after the client
    /// was cut off for abuse (an HTTP/2 flood): 10 ms after its first cut, doubled at each
    /// cut within 10 s, up to this. Zero: never. Default [`DEFAULT_ABUSE_DELAY`].
    pub abuse_delay: Duration,
}

/// [`PerClient::abuse_delay`] by default.
pub const DEFAULT_ABUSE_DELAY: Duration = Duration::from_millis(250);

impl Default for PerClient {
    fn default() -> PerClient {
        PerClient {
            max_connections_per_ip: None,
            rate: None,
            abuse_delay: DEFAULT_ABUSE_DELAY,
        }
    }
}

/// A request rate: `requests` per `per`, with bursts of up to `burst` (a token bucket that
/// holds `burst` tokens and refills at `requests / per`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// Requests a client may make at once after a quiet time (at least 1).
    pub burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            read_buffer_size: 16 * 1024,
            max_head_size: 16 * 1024,
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_body_size: Some(1024 * 1024),
            body_buffer_size: 64 * 1024,
            response_buffer_size: 256 * 1024,
            max_trailer_size: 8 * 1024,
            discard_body_limit: 64 * 1024,
            max_pipelined: 64,
            head_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            server_name: Some("paf".to_owned()),
            h2c: true,
            per_client: PerClient::default(),
            proxy_protocol: None,
            max_concurrent_streams: 128,
        }
    }
}
