//! Which worker a frame received on one queue belongs to ([`route`]): the header peeks behind
//! the mesh's hand-overs. Only headers are read, each read bounds-checked; smoltcp parses for
//! real where the frame ends up.

use smoltcp::wire::{DhcpPacket, DhcpRepr};

use super::{share_of, Kind};

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const DHCP_SERVER: u16 = 67;
const DHCP_CLIENT: u16 = 68;
/// ICMP errors: destination unreachable (fragmentation needed included), time exceeded,
/// parameter problem (RFC 792, RFC 1191).
const ICMPV4_ERRORS: [u8; 3] = [3, 11, 12];
/// ICMPv6 errors: destination unreachable, packet too big, time exceeded, parameter problem
/// (RFC 4443 §3).
const ICMPV6_ERRORS: [u8; 4] = [1, 2, 3, 4];

/// What the worker that received a frame does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Process it here only.
    Here,
    /// Process it here, and hand a copy to every other worker (a neighbour frame).
    Everywhere,
    /// Hand it to this worker, and do not process it here.
    To(usize, Kind),
    /// It claims to be an ICMP error or a DHCP reply but cannot be read as one: drop it.
    Malformed,
}

/// The part of an IP packet the routing needs.
struct Ip<'a> {
    protocol: u8,
    /// The payload, as far as the packet's length field and the bytes at hand go.
    payload: &'a [u8],
    /// Whether the payload starts the transport header (no fragment, or the first one).
    first: bool,
    /// Whether the packet is whole (not a fragment).
    whole: bool,
}

/// An IPv4 packet's header, or `None` if it is unusable.
fn ipv4(p: &[u8]) -> Option<Ip<'_>> {
    let b0 = *p.first()?;
    let ihl = usize::from(b0 & 0x0f) * 4;
    if b0 >> 4 != 4 || ihl < 20 || p.len() < ihl {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if total < ihl {
        return None;
    }
    let frag = u16::from_be_bytes([p[6], p[7]]);
    Some(Ip {
        protocol: p[9],
        payload: &p[ihl..total.min(p.len())],
        first: frag & 0x1fff == 0,
        whole: frag & 0x3fff == 0,
    })
}

/// An IPv6 packet's header (its next header is the protocol: extension headers are not
/// walked), or `None` if it is unusable.
fn ipv6(p: &[u8]) -> Option<Ip<'_>> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([p[4], p[5]]));
    Some(Ip {
        protocol: p[6],
        payload: &p[40..(40 + len).min(p.len())],
        first: true,
        whole: true,
    })
}

/// The big-endian `u16` at `at`.
fn u16_at(p: &[u8], at: usize) -> Option<u16> {
    let b = p.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Whether an Ethernet frame teaches neighbours: ARP, or an NDP router or neighbour message
/// (ICMPv6 types 133–137, IPv6 without extension headers, as NDP sends them).
pub(crate) fn is_neighbour_frame(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x06]) => true,
        Some([0x86, 0xdd]) => {
            frame.get(20) == Some(&58) && frame.get(54).is_some_and(|t| (133..=137).contains(t))
        }
        _ => false,
    }
}

/// Where a frame received by worker `me` of `workers` goes. `dhcp`: IPv4 is configured by
/// DHCP (worker 0 runs the client); `listened`: whether a listener has this local port (its
/// connections belong to whoever accepted them, whatever the port's share).
///
/// - ARP and NDP: [`Route::Everywhere`].
/// - TCP to a local port of another worker's share: to that worker.
/// - With `dhcp`, a DHCP reply (UDP from port 67 to port 68): to worker 0, or
///   [`Route::Malformed`] if it does not parse as DHCP.
/// - An ICMP or ICMPv6 error: by the packet it quotes, which we sent: a TCP segment from a
///   local port of another worker's share goes to that worker, UDP from the DHCP client's port
///   (with `dhcp`) to worker 0. A quote too short for the quoted IP header and the 8 bytes of
///   transport header every error carries (RFC 792, RFC 4443 §2.4) is [`Route::Malformed`].
/// - Anything else, fragments and IPv6 extension headers included: [`Route::Here`].
pub(crate) fn route(
    frame: &[u8],
    me: usize,
    workers: usize,
    dhcp: bool,
    listened: impl Fn(u16) -> bool,
) -> Route {
    if is_neighbour_frame(frame) {
        return Route::Everywhere;
    }
    let packet = frame.get(14..).unwrap_or_default();
    let (v6, ip) = match frame.get(12..14) {
        Some([0x08, 0x00]) => match ipv4(packet) {
            Some(ip) if ip.whole => (false, ip),
            _ => return Route::Here,
        },
        Some([0x86, 0xdd]) => match ipv6(packet) {
            Some(ip) => (true, ip),
            None => return Route::Here,
        },
        _ => return Route::Here,
    };
    let owner = |port: u16| share_of(port, workers).filter(|&k| k != me && !listened(port));
    let dhcp_owner = (dhcp && me != 0).then_some(0);
    match (v6, ip.protocol) {
        (_, TCP) => match u16_at(ip.payload, 2).and_then(owner) {
            Some(k) => Route::To(k, Kind::Tcp),
            None => Route::Here,
        },
        (false, UDP) if dhcp => {
            let p = ip.payload;
            if u16_at(p, 0) != Some(DHCP_SERVER) || u16_at(p, 2) != Some(DHCP_CLIENT) {
                return Route::Here;
            }
            if !is_dhcp(p) {
                return Route::Malformed;
            }
            dhcp_owner.map_or(Route::Here, |k| Route::To(k, Kind::Dhcp))
        }
        (false, ICMP) => icmp_error(ip.payload, &ICMPV4_ERRORS, ipv4, owner, dhcp_owner),
        (true, ICMPV6) => icmp_error(ip.payload, &ICMPV6_ERRORS, ipv6, owner, dhcp_owner),
        _ => Route::Here,
    }
}

/// Whether a UDP datagram (header included) holds a DHCP message smoltcp parses.
fn is_dhcp(udp: &[u8]) -> bool {
    let Some(len) = u16_at(udp, 4).map(usize::from) else {
        return false;
    };
    let Some(body) = udp.get(8..len) else {
        return false;
    };
    DhcpPacket::new_checked(body).is_ok_and(|p| DhcpRepr::parse(&p).is_ok())
}

/// Where an ICMP message goes: `Here` unless it is an error (`errors`: its types) quoting a
/// packet of another worker (`owner` of the quoted TCP source port, `dhcp_owner` of UDP from
/// the DHCP client's port).
fn icmp_error(
    icmp: &[u8],
    errors: &[u8],
    quoted_ip: fn(&[u8]) -> Option<Ip<'_>>,
    owner: impl Fn(u16) -> Option<usize>,
    dhcp_owner: Option<usize>,
) -> Route {
    match icmp.first() {
        Some(t) if errors.contains(t) => {}
        _ => return Route::Here,
    }
    // Type, code, checksum, 4 bytes (unused, MTU or pointer), then the quote.
    let Some(inner) = icmp.get(8..).and_then(quoted_ip) else {
        return Route::Malformed;
    };
    if !inner.first || !matches!(inner.protocol, TCP | UDP) {
        return Route::Here;
    }
    let Some(local) = u16_at(inner.payload, 0).filter(|_| inner.payload.len() >= 8) else {
        return Route::Malformed;
    };
    let to = match inner.protocol {
        TCP => owner(local),
        _ if local == DHCP_CLIENT => dhcp_owner,
        _ => None,
    };
    to.map_or(Route::Here, |k| Route::To(k, Kind::Icmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::mesh::ports_of;

    const ME: usize = 1;
    const N: usize = 4;

    fn eth(kind: [u8; 2], packet: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&kind);
        f.extend_from_slice(packet);
        f
    }

    fn v4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
        p.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        let total = (20 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn v6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0u8; 32]);
        p.extend_from_slice(payload);
        p
    }

    fn ports(src: u16, dst: u16, rest: usize) -> Vec<u8> {
        let mut t = src.to_be_bytes().to_vec();
        t.extend_from_slice(&dst.to_be_bytes());
        t.resize(4 + rest, 0);
        t
    }

    fn icmp(kind: u8, quote: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(quote);
        m
    }

    fn route_of(frame: &[u8], dhcp: bool) -> Route {
        route(frame, ME, N, dhcp, |p| p == 60_000)
    }

    /// A local port of worker `k`'s share.
    fn port_of(k: usize) -> u16 {
        *ports_of(k, N).start() + 7
    }

    #[test]
    fn neighbour_frames_are_arp_and_ndp_only() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(is_neighbour_frame(&arp));
        assert_eq!(route_of(&arp, false), Route::Everywhere);
        let mut v6 = vec![0u8; 14 + 40 + 24];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[20] = 58;
        for (kind, neighbour) in [
            (135, true),
            (136, true),
            (133, true),
            (128, false),
            (1, false),
        ] {
            v6[54] = kind;
            assert_eq!(is_neighbour_frame(&v6), neighbour, "ICMPv6 type {kind}");
        }
        v6[20] = 6;
        v6[54] = 135;
        assert!(!is_neighbour_frame(&v6), "TCP");
    }

    #[test]
    fn tcp_goes_to_the_share_of_its_destination_port_unless_listened() {
        for k in 0..N {
            let f = eth([0x08, 0x00], &v4(TCP, &ports(80, port_of(k), 16)));
            let want = if k == ME {
                Route::Here
            } else {
                Route::To(k, Kind::Tcp)
            };
            assert_eq!(route_of(&f, false), want, "IPv4, share {k}");
            let f = eth([0x86, 0xdd], &v6(TCP, &ports(80, port_of(k), 16)));
            assert_eq!(route_of(&f, false), want, "IPv6, share {k}");
        }
        for port in [80, 60_000, 49151] {
            let f = eth([0x08, 0x00], &v4(TCP, &ports(1234, port, 16)));
            assert_eq!(route_of(&f, false), Route::Here, "port {port}");
        }
        let mut frag = v4(TCP, &ports(80, port_of(0), 16));
        frag[6] = 0x20; // more fragments
        assert_eq!(route_of(&eth([0x08, 0x00], &frag), false), Route::Here);
        let short = eth([0x08, 0x00], &v4(TCP, &[0, 80, 0xc0]));
        assert_eq!(route_of(&short, false), Route::Here, "too short: smoltcp's");
    }

    #[test]
    fn icmp_errors_follow_the_quoted_tcp_source_port_and_echo_stays() {
        let quoted4 = v4(TCP, &ports(port_of(3), 80, 4));
        let quoted6 = v6(TCP, &ports(port_of(3), 443, 4));
        for kind in ICMPV4_ERRORS {
            let f = eth([0x08, 0x00], &v4(ICMP, &icmp(kind, &quoted4)));
            assert_eq!(route_of(&f, false), Route::To(3, Kind::Icmp), "type {kind}");
        }
        for kind in ICMPV6_ERRORS {
            let f = eth([0x86, 0xdd], &v6(ICMPV6, &icmp(kind, &quoted6)));
            assert_eq!(
                route_of(&f, false),
                Route::To(3, Kind::Icmp),
                "v6 type {kind}"
            );
        }
        // Echo request and reply, a redirect: stay.
        for kind in [8, 0, 5] {
            let f = eth([0x08, 0x00], &v4(ICMP, &icmp(kind, &quoted4)));
            assert_eq!(route_of(&f, false), Route::Here, "type {kind}");
        }
        for kind in [128, 129] {
            let f = eth([0x86, 0xdd], &v6(ICMPV6, &icmp(kind, &quoted6)));
            assert_eq!(route_of(&f, false), Route::Here, "v6 type {kind}");
        }
        // Our own share, a listener's port, a port outside the range: stay.
        for port in [port_of(ME), 60_000, 80] {
            let q = v4(TCP, &ports(port, 80, 4));
            let f = eth([0x08, 0x00], &v4(ICMP, &icmp(3, &q)));
            assert_eq!(route_of(&f, false), Route::Here, "port {port}");
        }
        // The quote of a non-first fragment has no ports; a quoted ICMP packet is not ours.
        let mut q = v4(TCP, &ports(port_of(3), 80, 4));
        q[6..8].copy_from_slice(&[0, 8]);
        let f = eth([0x08, 0x00], &v4(ICMP, &icmp(11, &q)));
        assert_eq!(route_of(&f, false), Route::Here);
        let q = v4(ICMP, &icmp(8, &[0; 8]));
        let f = eth([0x08, 0x00], &v4(ICMP, &icmp(11, &q)));
        assert_eq!(route_of(&f, false), Route::Here);
    }

    #[test]
    fn icmp_errors_quoting_udp_go_to_the_dhcp_client_only_for_its_port() {
        let dhcp = v4(UDP, &ports(68, 67, 4));
        let f = eth([0x08, 0x00], &v4(ICMP, &icmp(3, &dhcp)));
        assert_eq!(route_of(&f, true), Route::To(0, Kind::Icmp));
        assert_eq!(route_of(&f, false), Route::Here, "no DHCP client");
        assert_eq!(route(&f, 0, N, true, |_| false), Route::Here, "on worker 0");
        // A DNS query's port is smoltcp's random pick, not a share: it stays.
        let dns = v4(UDP, &ports(port_of(3), 53, 4));
        let f = eth([0x08, 0x00], &v4(ICMP, &icmp(3, &dns)));
        assert_eq!(route_of(&f, true), Route::Here);
    }

    #[test]
    fn a_cut_short_icmp_error_is_malformed_never_a_panic() {
        let whole = v4(TCP, &ports(port_of(3), 80, 4));
        for cut in 0..whole.len() {
            let f = eth([0x08, 0x00], &v4(ICMP, &icmp(3, &whole[..cut])));
            assert_eq!(
                route_of(&f, false),
                Route::Malformed,
                "quote of {cut} bytes"
            );
        }
        let whole = v6(TCP, &ports(port_of(3), 80, 4));
        for cut in 0..whole.len() {
            let f = eth([0x86, 0xdd], &v6(ICMPV6, &icmp(2, &whole[..cut])));
            assert_eq!(
                route_of(&f, false),
                Route::Malformed,
                "v6 quote of {cut} bytes"
            );
        }
        // The ICMP header itself cut short.
        for cut in 1..8 {
            let f = eth([0x08, 0x00], &v4(ICMP, &icmp(11, &[])[..cut]));
            assert_eq!(
                route_of(&f, false),
                Route::Malformed,
                "header of {cut} bytes"
            );
        }
        // A quoted header whose length fields lie.
        let mut bad = whole.clone();
        bad[0] = 0x45;
        let f = eth([0x86, 0xdd], &v6(ICMPV6, &icmp(1, &bad)));
        assert_eq!(
            route_of(&f, false),
            Route::Malformed,
            "IPv4 in an ICMPv6 error"
        );
        let mut bad = v4(TCP, &ports(port_of(3), 80, 4));
        bad[2..4].copy_from_slice(&[0, 4]);
        let f = eth([0x08, 0x00], &v4(ICMP, &icmp(3, &bad)));
        assert_eq!(
            route_of(&f, false),
            Route::Malformed,
            "total length below the header"
        );
        // Every prefix of every frame, and garbage: no panic.
        let frames = [
            eth([0x08, 0x00], &v4(ICMP, &icmp(3, &v4(TCP, &ports(1, 2, 4))))),
            eth(
                [0x86, 0xdd],
                &v6(ICMPV6, &icmp(2, &v6(UDP, &ports(1, 2, 4)))),
            ),
            eth([0x08, 0x00], &v4(UDP, &ports(67, 68, 300))),
        ];
        for f in &frames {
            for cut in 0..f.len() {
                let _ = route_of(&f[..cut], true);
            }
        }
        // Random bytes behind plausible Ethernet and IPv4 headers: no panic either.
        let mut x: u32 = 7;
        let mut next = || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        };
        for round in 0..3000 {
            let mut f: Vec<u8> = (0..14 + round % 90).map(|_| next()).collect();
            f[12..14].copy_from_slice(if round % 2 == 0 {
                &[0x08, 0x00]
            } else {
                &[0x86, 0xdd]
            });
            if let Some(b) = f.get_mut(14) {
                *b = if round % 2 == 0 { 0x45 } else { 0x60 };
            }
            let protocol = [ICMP, UDP, TCP, ICMPV6][round % 4];
            if let Some(b) = f.get_mut(if round % 2 == 0 { 23 } else { 20 }) {
                *b = protocol;
            }
            let _ = route_of(&f, true);
        }
    }

    fn dhcp_offer() -> Vec<u8> {
        use smoltcp::wire::{DhcpMessageType, EthernetAddress, Ipv4Address};
        let repr = DhcpRepr {
            message_type: DhcpMessageType::Offer,
            transaction_id: 9,
            secs: 0,
            client_hardware_address: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip: Ipv4Address::new(198, 18, 0, 7),
            server_ip: Ipv4Address::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(Ipv4Address::new(198, 18, 0, 1)),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(3600),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut body = vec![0u8; repr.buffer_len()];
        repr.emit(&mut DhcpPacket::new_unchecked(&mut body))
            .unwrap();
        let mut udp = ports(67, 68, 4);
        udp[4..6].copy_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&body);
        udp
    }

    #[test]
    fn dhcp_replies_go_to_worker_zero_and_garbage_is_malformed() {
        let offer = dhcp_offer();
        let f = eth([0x08, 0x00], &v4(UDP, &offer));
        assert_eq!(route_of(&f, true), Route::To(0, Kind::Dhcp));
        assert_eq!(
            route(&f, 0, N, true, |_| false),
            Route::Here,
            "worker 0's own"
        );
        assert_eq!(
            route_of(&f, false),
            Route::Here,
            "static IPv4: not ours to move"
        );
        // Other UDP to or from those ports is not DHCP for smoltcp either.
        let f = eth([0x08, 0x00], &v4(UDP, &ports(1234, 68, 300)));
        assert_eq!(route_of(&f, true), Route::Here);
        // Cut short, a UDP length past the bytes, garbage inside: dropped on any worker.
        for cut in [8, 20, 100, 239] {
            let mut short = offer[..cut].to_vec();
            short[4..6].copy_from_slice(&(cut as u16).to_be_bytes());
            let f = eth([0x08, 0x00], &v4(UDP, &short));
            assert_eq!(route_of(&f, true), Route::Malformed, "cut at {cut}");
        }
        let f = eth([0x08, 0x00], &v4(UDP, &offer[..100]));
        assert_eq!(
            route(&f, 0, N, true, |_| false),
            Route::Malformed,
            "length lies"
        );
        let mut garbage = offer.clone();
        garbage[8] = 9; // op code neither request nor reply; hardware type next
        garbage[9] = 99;
        let f = eth([0x08, 0x00], &v4(UDP, &garbage));
        assert_eq!(route_of(&f, true), Route::Malformed);
    }
}
