//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts before a
//! connection's first byte to say which client it carries. Sans-IO: [`Reader`] says how many
//! bytes it wants next ([`Reader::want`]), never more than the header holds, so the owner can
//! read exactly that from the socket and leave what follows (a TLS ClientHello, an HTTP
//! request) where it is. [`encode`] writes the header paf sends first on an upstream
//! connection (`send_proxy_protocol` of an `[[upstream]]`), in either version.
//!
//! Version 1 is a text line (`PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\r\n`, at most 107
//! bytes; `PROXY UNKNOWN …` carries no address). Version 2 is binary: a 12-byte signature, a
//! version/command byte, a family byte, a length, the addresses, then TLVs (read and skipped;
//! at most [`MAX_V2_LEN`] bytes in all). `LOCAL` (a health check of the balancer itself) and
//! `UNSPEC` carry no address: the connection's own peer stands.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 line, CRLF included (the specification's bound).
pub const MAX_V1_LEN: usize = 107;

/// The longest version 2 header paf reads (addresses and TLVs); longer ones are refused.
pub const MAX_V2_LEN: usize = 16 + 1024;

/// What a PROXY header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The client the connection carries; `None` for `LOCAL`, `UNKNOWN` or an unspecified
    /// family (the connection's own peer stands).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when given.
    pub destination: Option<SocketAddr>,
}

/// Why a header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The first bytes are neither `PROXY ` nor the version 2 signature.
    NotProxy,
    /// A malformed header; the text says what.
    Malformed(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotProxy => f.write_str("no PROXY protocol header"),
            Error::Malformed(why) => write!(f, "malformed PROXY protocol header: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Reads one header; see the [module docs](self).
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    /// A reader at the connection's first byte.
    pub fn new() -> Reader {
        Reader {
            buf: Vec::with_capacity(MAX_V1_LEN),
        }
    }

    /// How many bytes to read next (at least 1 until the header is complete): never past
    /// the end of the header.
    pub fn want(&self) -> usize {
        let n = self.buf.len();
        if n < V2_SIGNATURE.len() {
            // Both versions are at least 12 bytes long (`PROXY UNKNOWN\r\n` is 15).
            return V2_SIGNATURE.len() - n;
        }
        if self.buf[..12] == V2_SIGNATURE {
            if n < 16 {
                return 16 - n;
            }
            let len = usize::from(u16::from_be_bytes([self.buf[14], self.buf[15]]));
            return (16 + len).saturating_sub(n);
        }
        // Version 1: a byte at a time up to the CRLF.
        usize::from(!self.buf.ends_with(b"\r\n"))
    }

    /// Takes the next bytes (at most [`Reader::want`] of them); `Ok(Some(header))` once it is
    /// complete.
    ///
    /// # Errors
    /// [`Error`] when the bytes cannot be a PROXY header: the connection should be closed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Header>, Error> {
        let n = bytes.len().min(self.want());
        self.buf.extend_from_slice(&bytes[..n]);
        let b = &self.buf;
        if b.len() < V2_SIGNATURE.len() {
            let prefix = b.len().min(6);
            if b[..prefix] != b"PROXY "[..prefix] && b[..] != V2_SIGNATURE[..b.len()] {
                return Err(Error::NotProxy);
            }
            return Ok(None);
        }
        if b[..12] == V2_SIGNATURE {
            if b.len() >= 16 {
                let len = usize::from(u16::from_be_bytes([b[14], b[15]]));
                if 16 + len > MAX_V2_LEN {
                    return Err(Error::Malformed("version 2 header too long"));
                }
            }
            return if self.want() == 0 {
                parse_v2(b).map(Some)
            } else {
                Ok(None)
            };
        }
        if !b.starts_with(b"PROXY ") {
            return Err(Error::NotProxy);
        }
        if b.ends_with(b"\r\n") {
            return parse_v1(&b[..b.len() - 2]).map(Some);
        }
        if b.len() >= MAX_V1_LEN {
            return Err(Error::Malformed("version 1 line too long"));
        }
        Ok(None)
    }
}

fn parse_v1(line: &[u8]) -> Result<Header, Error> {
    let line = std::str::from_utf8(line).map_err(|_| Error::Malformed("not ASCII"))?;
    let mut f = line.split(' ');
    f.next(); // PROXY
    let none = Header {
        source: None,
        destination: None,
    };
    match f.next() {
        Some("UNKNOWN") => return Ok(none),
        Some("TCP4" | "TCP6") => {}
        _ => return Err(Error::Malformed("unknown protocol")),
    }
    let v6 = line.as_bytes()[6..].starts_with(b"TCP6");
    let (Some(src), Some(dst), Some(sport), Some(dport), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(Error::Malformed("wrong number of fields"));
    };
    let ip = |s: &str| -> Result<IpAddr, Error> {
        let ip: IpAddr = s.parse().map_err(|_| Error::Malformed("bad address"))?;
        if ip.is_ipv6() != v6 {
            return Err(Error::Malformed("address of the wrong family"));
        }
        Ok(ip)
    };
    let port = |s: &str| -> Result<u16, Error> {
        // Decimal without leading zeros, as the specification says.
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
            return Err(Error::Malformed("bad port"));
        }
        s.parse().map_err(|_| Error::Malformed("bad port"))
    };
    Ok(Header {
        source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
    })
}

fn parse_v2(b: &[u8]) -> Result<Header, Error> {
    let ver_cmd = b[12];
    if ver_cmd >> 4 != 2 {
        return Err(Error::Malformed("version is not 2"));
    }
    let none = Header {
        source: None,
        destination: None,
    };
    match ver_cmd & 0xf {
        0 => return Ok(none), // LOCAL
        1 => {}               // PROXY
        _ => return Err(Error::Malformed("unknown command")),
    }
    let body = &b[16..];
    match b[13] {
        // TCP over IPv4 (or UDP: the addresses mean the same).
        0x11 | 0x12 => {
            let a = body
                .get(..12)
                .ok_or(Error::Malformed("IPv4 addresses truncated"))?;
            let ip = |i: usize| IpAddr::from(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Ok(Header {
                source: Some(SocketAddr::new(ip(0), port(8))),
                destination: Some(SocketAddr::new(ip(4), port(10))),
            })
        }
        0x21 | 0x22 => {
            let a = body
                .get(..36)
                .ok_or(Error::Malformed("IPv6 addresses truncated"))?;
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::from(Ipv6Addr::from(o))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Ok(Header {
                source: Some(SocketAddr::new(ip(0), port(32))),
                destination: Some(SocketAddr::new(ip(16), port(34))),
            })
        }
        // UNSPEC, or UNIX sockets: no address paf can use.
        0x00 | 0x31 | 0x32 => Ok(none),
        _ => Err(Error::Malformed("unknown address family")),
    }
}

/// Which version of the header to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The text line (`PROXY TCP4 …\r\n`).
    V1,
    /// The binary header.
    V2,
}

/// The header saying that `source` connected to `destination`, in `version`.
///
/// IPv4-mapped IPv6 addresses are written as IPv4. Both addresses of a header are of one
/// family: when they are not (a client over IPv4 reaching an IPv6 address), the client's family
/// wins and the destination becomes the unspecified address of that family, its port kept.
pub fn encode(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    match version {
        Version::V1 => encode_v1(source, destination),
        Version::V2 => encode_v2(source, destination),
    }
}

/// The pair of addresses a header can say: IPv4-mapped addresses unmapped, then both of the
/// source's family.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let s = SocketAddr::new(source.ip().to_canonical(), source.port());
    let d = SocketAddr::new(destination.ip().to_canonical(), destination.port());
    let d = match (s, d) {
        (SocketAddr::V4(_), SocketAddr::V6(d)) => {
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), d.port())
        }
        (SocketAddr::V6(_), SocketAddr::V4(d)) => {
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), d.port())
        }
        _ => d,
    };
    (s, d)
}

/// The version 1 line saying that `source` connected to `destination` (see [`encode`] for
/// mixed families): `PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\r\n`, at most
/// [`MAX_V1_LEN`] bytes.
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(source, destination);
    let proto = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// The version 2 header (command `PROXY`, TCP, no TLV) saying that `source` connected to
/// `destination` (see [`encode`] for mixed families).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(source, destination);
    // Version 2, PROXY; TCP over IPv4 or IPv6; the length of the address block.
    let (family, len) = if s.is_ipv4() { (0x11, 12) } else { (0x21, 36) };
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, family, 0, len]);
    for ip in [s.ip(), d.ip()] {
        match ip {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` as an owner would (exactly `want()` bytes at a time, from a stream that
    /// may hand fewer); returns the header and how many bytes were read.
    fn read(input: &[u8], step: usize) -> (Result<Header, Error>, usize) {
        let mut r = Reader::new();
        let mut at = 0;
        loop {
            let n = r.want().min(step).min(input.len() - at);
            if n == 0 {
                return (Err(Error::Malformed("ran out")), at);
            }
            match r.feed(&input[at..at + n]) {
                Ok(Some(h)) => return (Ok(h), at + n),
                Ok(None) => at += n,
                Err(e) => return (Err(e), at + n),
            }
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_lines_are_read_exactly_and_checked() {
        let rest = b"GET / HTTP/1.1\r\n\r\n";
        let mut input = b"PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\r\n".to_vec();
        let header_len = input.len();
        input.extend_from_slice(rest);
        for step in [1, 3, 100] {
            let (h, used) = read(&input, step);
            assert_eq!(used, header_len, "never past the header");
            let h = h.unwrap();
            assert_eq!(h.source, Some(sa("198.18.0.1:5000")));
            assert_eq!(h.destination, Some(sa("198.18.0.2:80")));
        }
        let (h, _) = read(b"PROXY TCP6 fd00:198:18::1 fd00:198:18::2 1 443\r\n", 7);
        assert_eq!(h.unwrap().source, Some(sa("[fd00:198:18::1]:1")));
        let (h, _) = read(b"PROXY UNKNOWN whatever\r\n", 5);
        assert_eq!(h.unwrap().source, None);
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00",
            b"PROXY TCP4 198.18.0.1 198.18.0.2 5000\r\n",
            b"PROXY TCP4 198.18.0.1 198.18.0.2 05000 80\r\n",
            b"PROXY TCP4 fd00::1 198.18.0.2 5000 80\r\n",
            b"PROXY TCP5 198.18.0.1 198.18.0.2 5000 80\r\n",
            b"PROXY TCP4 198.18.0.1 198.18.0.2 5000 70000\r\n",
        ] {
            assert!(read(bad, 4).0.is_err(), "{bad:?}");
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (h, used) = read(long.as_bytes(), 50);
        assert_eq!(h, Err(Error::Malformed("version 1 line too long")));
        assert!(used <= MAX_V1_LEN);
    }

    #[test]
    fn v2_round_trips_and_tlvs_are_skipped() {
        for (s, d) in [
            (sa("198.18.0.1:5000"), sa("198.18.0.2:80")),
            (sa("[fd00:198:18::1]:5000"), sa("[fd00:198:18::2]:443")),
        ] {
            let mut h = encode_v2(s, d);
            // A TLV (type 0x04 NOOP, 3 bytes) after the addresses.
            let len = u16::from_be_bytes([h[14], h[15]]) + 6;
            h[14..16].copy_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[0x04, 0, 3, 1, 2, 3]);
            let total = h.len();
            h.extend_from_slice(b"\x16\x03\x01 a ClientHello");
            for step in [1, 5, 1000] {
                let (got, used) = read(&h, step);
                assert_eq!(used, total);
                assert_eq!(
                    got.unwrap(),
                    Header {
                        source: Some(s),
                        destination: Some(d)
                    }
                );
            }
        }
        // LOCAL: no address.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local, 3).0.unwrap().source, None);
        // Version 3, a bad command, a truncated address block, a huge length.
        for (at, byte) in [(12, 0x31), (12, 0x2f), (15, 4), (14, 0xff)] {
            let mut h = encode_v2(sa("198.18.0.1:1"), sa("198.18.0.2:2"));
            h[at] = byte;
            assert!(read(&h, 100).0.is_err(), "byte {at} = {byte:#x}");
        }
    }

    #[test]
    fn encoded_headers_round_trip_through_the_reader_in_both_versions() {
        let cases = [
            // (source, destination, what the reader must see)
            (
                "198.18.0.1:5000",
                "198.18.0.2:80",
                "198.18.0.1:5000",
                "198.18.0.2:80",
            ),
            (
                "203.0.113.9:1",
                "198.18.0.2:65535",
                "203.0.113.9:1",
                "198.18.0.2:65535",
            ),
            (
                "[fd00:198:18::1]:5000",
                "[fd00:198:18::2]:443",
                "[fd00:198:18::1]:5000",
                "[fd00:198:18::2]:443",
            ),
            (
                "[2001:db8::]:9",
                "[::1]:8443",
                "[2001:db8::]:9",
                "[::1]:8443",
            ),
            // IPv4-mapped: written as IPv4.
            (
                "[::ffff:198.18.0.1]:7",
                "[::ffff:198.18.0.2]:80",
                "198.18.0.1:7",
                "198.18.0.2:80",
            ),
            // Mixed families: the client's wins, the destination is unspecified.
            ("198.18.0.1:7", "[fd00::2]:80", "198.18.0.1:7", "0.0.0.0:80"),
            ("[fd00::1]:7", "198.18.0.2:80", "[fd00::1]:7", "[::]:80"),
        ];
        for (src, dst, want_src, want_dst) in cases {
            let want = Header {
                source: Some(sa(want_src)),
                destination: Some(sa(want_dst)),
            };
            for version in [Version::V1, Version::V2] {
                let mut bytes = encode(version, sa(src), sa(dst));
                let len = bytes.len();
                if version == Version::V1 {
                    assert!(len <= MAX_V1_LEN, "{src} {dst}: {len}");
                    assert!(bytes.starts_with(b"PROXY TCP"));
                } else {
                    assert!(bytes.starts_with(&V2_SIGNATURE));
                }
                bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
                for step in [1, 7, 1000] {
                    let (got, used) = read(&bytes, step);
                    assert_eq!(used, len, "{version:?} {src} {dst}");
                    assert_eq!(got, Ok(want), "{version:?} {src} {dst} step {step}");
                }
            }
        }
        // The longest line the specification allows fits.
        let v1 = encode_v1(
            sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535"),
        );
        assert_eq!(v1.len(), MAX_V1_LEN - 3, "{}", String::from_utf8_lossy(&v1));
        assert_eq!(
            encode_v1(sa("198.18.0.1:5000"), sa("198.18.0.2:80")),
            b"PROXY TCP4 198.18.0.1 198.18.0.2 5000 80\r\n"
        );
    }
}
