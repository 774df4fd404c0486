//! Limits and timeouts of the HTTP/1.1 client codec.

use std::time::Duration;

/// Limits and timeouts for [`ClientConn`](super::ClientConn), shared behind an `Arc` by the
/// connections of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Status line plus header fields of one response, in bytes; beyond it
    /// [`ClientError::HeadTooLarge`](super::ClientError::HeadTooLarge).
    pub max_head_size: usize,
    /// Number of header fields of one response; beyond it `HeadTooLarge`.
    pub max_headers: usize,
    /// Largest accepted response body; `None` means unlimited. Beyond it
    /// [`ClientError::BodyTooLarge`](super::ClientError::BodyTooLarge) (at once for a
    /// `Content-Length`, when crossed for chunked and close-delimited bodies).
    pub max_body_size: Option<u64>,
    /// Bytes of chunked trailer section accepted (trailers are validated and dropped).
    pub max_trailer_size: usize,
    /// Decoded response-body bytes buffered per request before the codec stops consuming input.
    pub body_buffer_size: usize,
    /// Pending output cap: `write_body` accepts no more once this much output is queued.
    pub request_buffer_size: usize,
    /// Longest wait for the first byte of a response once its request was transmitted (and
    /// between an interim and the final response).
    pub response_timeout: Duration,
    /// Longest pause between bytes of a response head or body while the codec wants them.
    pub read_timeout: Duration,
    /// Longest time with pending output and no transmit progress.
    pub write_timeout: Duration,
    /// Plain-text (`http`) connections speak HTTP/2 from their first byte (h2c with prior
    /// knowledge, RFC 9113 §3.3) instead of HTTP/1.1. Only for servers known to accept it;
    /// default `false`. TLS connections choose by ALPN instead: see
    /// [`tls::ClientConfigBuilder::alpn_protocols`](crate::tls::ClientConfigBuilder::alpn_protocols).
    pub http2_prior_knowledge: bool,
    /// HTTP/1.1 response heads come without their hop-by-hop fields (RFC 9110 §7.6.1:
    /// `Connection` and the fields it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
    /// `Transfer-Encoding`, `Upgrade`), which a proxy must not relay; the codec still reads
    /// them for the framing and the connection's persistence. A `101`'s head keeps them (its
    /// `Upgrade` says what the connection switched to). Default `false`.
    pub strip_hop_by_hop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_head_size: 64 * 1024,
            max_headers: 128,
            max_body_size: None,
            max_trailer_size: 8 * 1024,
            body_buffer_size: 64 * 1024,
            request_buffer_size: 256 * 1024,
            response_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            http2_prior_knowledge: false,
            strip_hop_by_hop: false,
        }
    }
}
