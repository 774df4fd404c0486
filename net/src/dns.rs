//! Name resolution for the layers above: the types of the [`Transport`](crate::Transport) DNS
//! calls, and the DNS message code the kernel twin uses.
//!
//! Contract (both stacks):
//! - [`Transport::resolve`](crate::Transport::resolve) starts a query for one record type (A or
//!   AAAA) and returns a [`QueryId`]; when it has an outcome the stack emits
//!   [`Event::Resolved`](crate::Event::Resolved) and the outcome is taken, once, with
//!   [`Transport::poll_resolution`](crate::Transport::poll_resolution);
//! - a literal address (`198.18.0.1`, `fd00::1`, `[fd00::1]`) never reaches DNS: it resolves at
//!   once, to itself, for the matching record type (and to [`DnsError::NotFound`] for the other);
//! - servers are asked one after the other: each gets [`ATTEMPT_TIMEOUT`], during which the
//!   question is retransmitted after one second; a server that answers "no such name" or "no
//!   record of that type" ends the query with [`DnsError::NotFound`]; when every server has had
//!   its turn the query fails with [`DnsError::Timeout`];
//! - the userspace [`Stack`](crate::Stack) uses smoltcp's DNS socket, with the servers of its
//!   [`Config`](crate::Config) and those learned by DHCP; the
//!   [`KernelStack`](crate::kernel::KernelStack) sends the same questions over kernel UDP sockets
//!   to the servers given to it, or else those of `/etc/resolv.conf` (not `/etc/hosts`: both
//!   stacks resolve through DNS only, so they behave alike).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub(crate) mod kernel;

use smoltcp::wire::{
    DnsFlags, DnsOpcode, DnsPacket, DnsQueryType, DnsQuestion, DnsRcode, DnsRecord, DnsRecordData,
    DnsRepr,
};

/// How long one server gets to answer before the next one is asked.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2500);

/// When an unanswered question is sent again to the same server.
pub const RETRANSMIT: Duration = Duration::from_secs(1);

/// Most queries a stack runs at once.
pub const MAX_QUERIES: usize = 64;

/// A DNS query of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.0)
    }
}

/// The record type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
}

impl RecordType {
    pub(crate) fn wire(self) -> DnsQueryType {
        match self {
            RecordType::A => DnsQueryType::A,
            RecordType::Aaaa => DnsQueryType::Aaaa,
        }
    }

    /// Whether `addr` is of this type's family.
    pub fn matches(self, addr: IpAddr) -> bool {
        matches!(
            (self, addr),
            (RecordType::A, IpAddr::V4(_)) | (RecordType::Aaaa, IpAddr::V6(_))
        )
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        })
    }
}

/// Why a name could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name is not a valid DNS name (empty label, label over 63 bytes, name over 255).
    InvalidName,
    /// No DNS server is configured (or learned by DHCP) that the stack can reach.
    NoServers,
    /// The server says the name does not exist or has no record of the type asked.
    NotFound,
    /// No server answered in time.
    Timeout,
    /// [`MAX_QUERIES`] queries are running already.
    Busy,
    /// The operating system refused (kernel twin only).
    Os(io::ErrorKind),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::InvalidName => f.write_str("invalid name"),
            DnsError::NoServers => f.write_str("no DNS server configured"),
            DnsError::NotFound => f.write_str("name not found"),
            DnsError::Timeout => f.write_str("no answer from the DNS servers"),
            DnsError::Busy => f.write_str("too many DNS queries at once"),
            DnsError::Os(k) => write!(f, "DNS query failed: {k}"),
        }
    }
}

impl std::error::Error for DnsError {}

/// What a resolution ends with: the addresses found (never empty) or why none.
pub type Resolution = Result<Vec<IpAddr>, DnsError>;

/// The address a literal name stands for (`[..]` around IPv6 allowed), if it is one.
pub fn literal(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse().ok()
}

/// The outcome for a literal address asked with `rtype`.
pub(crate) fn literal_outcome(addr: IpAddr, rtype: RecordType) -> Resolution {
    if rtype.matches(addr) {
        Ok(vec![addr])
    } else {
        Err(DnsError::NotFound)
    }
}

/// `name` in DNS wire format (length-prefixed labels, final zero), trailing dot allowed.
///
/// # Errors
/// [`DnsError::InvalidName`] for an empty name or label, a label over 63 bytes, or a name over
/// 255 bytes.
pub fn encode_name(name: &str) -> Result<Vec<u8>, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(DnsError::InvalidName);
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::InvalidName);
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(DnsError::InvalidName);
    }
    Ok(out)
}

/// A query message asking for `rtype` records of the wire-format `name`, recursion desired.
pub fn encode_query(name: &[u8], rtype: RecordType, txid: u16) -> Vec<u8> {
    let repr = DnsRepr {
        transaction_id: txid,
        opcode: DnsOpcode::Query,
        flags: DnsFlags::RECURSION_DESIRED,
        question: DnsQuestion {
            name,
            type_: rtype.wire(),
        },
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DnsPacket::new_unchecked(&mut buf[..]));
    buf
}

/// Reads a response to the query `txid` for `rtype` records of `name` (wire format).
///
/// Returns `None` for a message that is not the answer (another id, not a response, a mangled
/// packet, another question); `Some(Ok(addrs))` with the records of the type asked (CNAME chains
/// included, since a recursive server lists their targets' records too); `Some(Err(NotFound))`
/// for "no such name" or an answer without such records; `Some(Err(Timeout))` for a server
/// failure (the caller moves on to the next server).
pub fn parse_response(msg: &[u8], txid: u16, rtype: RecordType, name: &[u8]) -> Option<Resolution> {
    let p = DnsPacket::new_checked(msg).ok()?;
    if p.transaction_id() != txid
        || !p.flags().contains(DnsFlags::RESPONSE)
        || p.opcode() != DnsOpcode::Query
        || p.question_count() != 1
    {
        return None;
    }
    let (mut rest, question) = DnsQuestion::parse(p.payload()).ok()?;
    if question.type_ != rtype.wire() || !same_name(&p, question.name, name) {
        return None;
    }
    match p.rcode() {
        DnsRcode::NoError => {}
        DnsRcode::NXDomain => return Some(Err(DnsError::NotFound)),
        _ => return Some(Err(DnsError::Timeout)),
    }
    let mut addrs = Vec::new();
    for _ in 0..p.answer_record_count() {
        let Ok((next, record)) = DnsRecord::parse(rest) else {
            break;
        };
        rest = next;
        match record.data {
            DnsRecordData::A(a) if rtype == RecordType::A => {
                addrs.push(IpAddr::V4(Ipv4Addr::from(a.octets())));
            }
            DnsRecordData::Aaaa(a) if rtype == RecordType::Aaaa => {
                addrs.push(IpAddr::V6(Ipv6Addr::from(a.octets())));
            }
            _ => {}
        }
    }
    Some(if addrs.is_empty() {
        Err(DnsError::NotFound)
    } else {
        Ok(addrs)
    })
}

/// Case-insensitive comparison of a (possibly compressed) name in `p` with a plain wire name.
fn same_name(p: &DnsPacket<&[u8]>, at: &[u8], name: &[u8]) -> bool {
    let mut theirs = p.parse_name(at);
    let mut ours = name;
    loop {
        match (theirs.next(), ours.first()) {
            (None, Some(0)) => return true,
            (Some(Ok(label)), Some(&len)) if usize::from(len) == label.len() && len > 0 => {
                if !label.eq_ignore_ascii_case(&ours[1..=label.len()]) {
                    return false;
                }
                ours = &ours[1 + label.len()..];
            }
            _ => return false,
        }
    }
}

/// The `nameserver` addresses of a `resolv.conf` text, in order.
pub fn resolv_conf_servers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // A zone index (`fe80::1%eth0`) cannot be used from here: skip such servers.
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// Test support: a response message to `query` with the given answers (A or AAAA by address
/// family) and response code.
pub fn answer(query: &[u8], addrs: &[IpAddr], nxdomain: bool) -> Vec<u8> {
    let mut out = query.to_vec();
    if out.len() < 12 {
        return out;
    }
    // QR=1, opcode copied, RD copied, RA=1, rcode.
    out[2] |= 0x80;
    out[3] = 0x80 | if nxdomain { 3 } else { 0 };
    out[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    out[8..12].fill(0);
    for a in addrs {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        let (t, data) = match a {
            IpAddr::V4(v4) => (1u16, v4.octets().to_vec()),
            IpAddr::V6(v6) => (28u16, v6.octets().to_vec()),
        };
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_never_need_dns() {
        let cases = [
            ("198.18.0.1", Some("198.18.0.1")),
            ("fd00:198:18::1", Some("fd00:198:18::1")),
            ("[fd00:198:18::1]", Some("fd00:198:18::1")),
            ("upstream.test", None),
            ("1.2.3", None),
        ];
        for (name, want) in cases {
            assert_eq!(literal(name), want.map(|w| w.parse().unwrap()), "{name}");
        }
        let v4: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(literal_outcome(v4, RecordType::A), Ok(vec![v4]));
        assert_eq!(
            literal_outcome(v4, RecordType::Aaaa),
            Err(DnsError::NotFound)
        );
    }

    #[test]
    fn names_encode_or_are_rejected() {
        assert_eq!(encode_name("a.bc.").unwrap(), b"\x01a\x02bc\x00");
        assert_eq!(encode_name("a.bc").unwrap(), b"\x01a\x02bc\x00");
        let long = "x".repeat(64);
        let too_long = ["y".repeat(60).as_str(); 5].join(".");
        for bad in ["", ".", "a..b", long.as_str(), too_long.as_str()] {
            assert_eq!(encode_name(bad), Err(DnsError::InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn responses_are_matched_and_read() {
        let name = encode_name("Upstream.test").unwrap();
        let q = encode_query(&name, RecordType::A, 0x1234);
        let v4: IpAddr = "198.18.0.1".parse().unwrap();
        let v6: IpAddr = "fd00:198:18::1".parse().unwrap();
        // The answer, the name compared without case.
        let lower = encode_name("upstream.TEST").unwrap();
        let a = answer(&q, &[v4], false);
        assert_eq!(
            parse_response(&a, 0x1234, RecordType::A, &lower),
            Some(Ok(vec![v4]))
        );
        // Not ours: another id, another type, another name, our own query, garbage.
        assert_eq!(parse_response(&a, 0x1235, RecordType::A, &name), None);
        assert_eq!(parse_response(&a, 0x1234, RecordType::Aaaa, &name), None);
        let other = encode_name("paf.test").unwrap();
        assert_eq!(parse_response(&a, 0x1234, RecordType::A, &other), None);
        assert_eq!(parse_response(&q, 0x1234, RecordType::A, &name), None);
        assert_eq!(parse_response(b"\x12", 0x1234, RecordType::A, &name), None);
        // No such name; no record of that type; records of another type only.
        let nx = answer(&q, &[], true);
        assert_eq!(
            parse_response(&nx, 0x1234, RecordType::A, &name),
            Some(Err(DnsError::NotFound))
        );
        let empty = answer(&q, &[], false);
        assert_eq!(
            parse_response(&empty, 0x1234, RecordType::A, &name),
            Some(Err(DnsError::NotFound))
        );
        let q6 = encode_query(&name, RecordType::Aaaa, 7);
        let a6 = answer(&q6, &[v6, v4], false);
        assert_eq!(
            parse_response(&a6, 7, RecordType::Aaaa, &name),
            Some(Ok(vec![v6]))
        );
        // SERVFAIL: try the next server.
        let mut fail = answer(&q, &[], false);
        fail[3] = 0x82;
        assert_eq!(
            parse_response(&fail, 0x1234, RecordType::A, &name),
            Some(Err(DnsError::Timeout))
        );
    }

    #[test]
    fn resolv_conf_lists_nameservers_in_order() {
        let text = "# comment\nsearch example\nnameserver 10.0.0.1\nnameserver fd00::53\n\
                    nameserver fe80::1%eth0\nnameserver\noptions ndots:1\n";
        let want: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "fd00::53".parse().unwrap()];
        assert_eq!(resolv_conf_servers(text), want);
    }
}
