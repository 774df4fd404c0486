//! Workers' stacks joined in a mesh, each on its own in-memory wire standing for its queue of
//! a multi-queue TAP, on a virtual clock; the test plays the kernel side of every queue (a
//! DHCP server whose replies land on the "wrong" queue, routers sending ICMP errors).
//!
//! - DHCP with two workers: only worker 0 runs the client; the server's replies, put on
//!   worker 1's queue, are handed to worker 0; the lease, its change at rebinding and its
//!   expiry reach worker 1's stack (address, router, DNS servers).
//! - ICMP errors put on worker 1's queue that quote a TCP segment from worker 0's share of
//!   the ephemeral ports are handed to worker 0; those quoting worker 1's own, or a
//!   listener's port, stay.
//! - Malformed DHCP replies and cut-short ICMP errors are dropped and counted, on any worker.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use net::clock::to_smol;
use net::device::{wire, Device, Faults, Link, WireEnd};
use net::stack::mesh::{self, Kind};
use net::{Config, Ipv4Setting, Ipv6Setting, Stack, Transport};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

const MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 2];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 1];
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const LEASED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);
const DNS_1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 53);
const DNS_2: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 53);
/// Lease time given by the test's server, in seconds (T1 50 s, T2 87.5 s).
const LEASE: u32 = 100;

/// Worker stacks, each with the test's end of its wire.
struct Rig {
    stacks: Vec<Stack>,
    kernel: Vec<WireEnd>,
    counters: mesh::Counters,
    now: Instant,
}

impl Rig {
    fn new(n: usize, ipv4: Ipv4Setting) -> Rig {
        let now = net::clock::origin() + Duration::from_secs(1);
        let peers = mesh::mesh(n).unwrap();
        let counters = peers[0].counters();
        let mut stacks = Vec::new();
        let mut kernel = Vec::new();
        for (k, peer) in peers.into_iter().enumerate() {
            let (ours, theirs) = wire::pair(1500, Faults::default(), Faults::default(), k as u64);
            let config = Config {
                mac: MAC,
                ipv4: ipv4.clone(),
                ipv6: Ipv6Setting::Disabled,
                seed: Some(7 + k as u64),
                ..Config::default()
            };
            let mut stack = Stack::new(config, Device::new(Link::Wire(ours)), now).unwrap();
            stack.join(peer);
            stacks.push(stack);
            kernel.push(theirs);
        }
        Rig {
            stacks,
            kernel,
            counters,
            now,
        }
    }

    /// Poll every stack a few times at the current instant (a hand-over reaches its worker in
    /// that worker's next pass).
    fn poll(&mut self) {
        for _ in 0..3 {
            for s in &mut self.stacks {
                s.poll(self.now);
            }
        }
    }

    /// The frames worker `k` sent since the last call.
    fn sent(&mut self, k: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Ok(Some(n)) = self.kernel[k].recv(to_smol(self.now), &mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// Put `frame` on worker `k`'s queue, then poll.
    fn deliver(&mut self, k: usize, frame: &[u8]) {
        self.kernel[k].send(to_smol(self.now), frame).unwrap();
        self.poll();
    }

    fn handed(&self, kind: Kind) -> u64 {
        self.counters.snapshot().of(kind)
    }
}

/// The DHCP message type and transaction id of a DHCP client message in `frame`.
fn dhcp_request(frame: &[u8]) -> Option<(DhcpMessageType, u32)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if (udp.src_port(), udp.dst_port()) != (68, 67) {
        return None;
    }
    let packet = DhcpPacket::new_checked(udp.payload()).ok()?;
    let repr = DhcpRepr::parse(&packet).ok()?;
    Some((repr.message_type, repr.transaction_id))
}

/// An Ethernet frame from the server to the stacks' MAC carrying UDP.
fn udp_frame(dst: Ipv4Addr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
    EthernetRepr {
        src_addr: EthernetAddress(SERVER_MAC),
        dst_addr: EthernetAddress(MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: SERVER,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        hop_limit: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]), &caps);
    UdpRepr { src_port, dst_port }.emit(
        &mut UdpPacket::new_unchecked(&mut f[34..]),
        &IpAddress::Ipv4(SERVER),
        &IpAddress::Ipv4(dst),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    f
}

/// The server's OFFER or ACK for transaction `xid`, with `dns` as DNS server.
fn dhcp_reply(kind: DhcpMessageType, xid: u32, dns: Ipv4Addr) -> Vec<u8> {
    let repr = DhcpRepr {
        message_type: kind,
        transaction_id: xid,
        secs: 0,
        client_hardware_address: EthernetAddress(MAC),
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: LEASED,
        server_ip: SERVER,
        router: Some(SERVER),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(SERVER),
        parameter_request_list: None,
        dns_servers: Some([dns].into_iter().collect()),
        max_size: None,
        lease_duration: Some(LEASE),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let mut body = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DhcpPacket::new_unchecked(&mut body[..]))
        .unwrap();
    udp_frame(LEASED, 67, 68, &body)
}

/// Worker 0's next DHCP message, as it appears on its queue within `within`.
fn next_request(rig: &mut Rig, within: Duration) -> (DhcpMessageType, u32) {
    let until = rig.now + within;
    loop {
        rig.poll();
        assert!(
            rig.sent(1).iter().all(|f| dhcp_request(f).is_none()),
            "worker 1 runs no DHCP client"
        );
        if let Some(r) = rig.sent(0).iter().find_map(|f| dhcp_request(f)) {
            return r;
        }
        assert!(rig.now < until, "no DHCP message from worker 0");
        rig.now += Duration::from_millis(500);
    }
}

fn assert_lease(rig: &Rig, dns: Option<Ipv4Addr>) {
    for (k, s) in rig.stacks.iter().enumerate() {
        match dns {
            Some(d) => {
                assert_eq!(s.ipv4(), Some(LEASED), "worker {k}");
                assert_eq!(s.ipv4_gateway(), Some(SERVER), "worker {k}");
                assert_eq!(s.dns_servers(), &[IpAddr::V4(d)], "worker {k}");
                assert!(
                    s.addresses()
                        .iter()
                        .any(|c| c.to_string() == "198.18.0.7/24"),
                    "worker {k}: {:?}",
                    s.addresses()
                );
            }
            None => {
                assert_eq!(s.ipv4(), None, "worker {k}");
                assert_eq!(s.ipv4_gateway(), None, "worker {k}");
                assert!(s.dns_servers().is_empty(), "worker {k}");
            }
        }
    }
}

#[test]
fn one_lease_taken_by_worker_zero_reaches_every_worker_and_follows_its_changes() {
    let mut rig = Rig::new(2, Ipv4Setting::Dhcp);
    assert_lease(&rig, None);
    // DISCOVER from worker 0; the OFFER lands on worker 1's queue.
    let (kind, xid) = next_request(&mut rig, Duration::from_secs(5));
    assert_eq!(kind, DhcpMessageType::Discover);
    rig.deliver(1, &dhcp_reply(DhcpMessageType::Offer, xid, DNS_1));
    assert_eq!(rig.handed(Kind::Dhcp), 1);
    let (kind, xid) = next_request(&mut rig, Duration::from_secs(5));
    assert_eq!(kind, DhcpMessageType::Request);
    rig.deliver(1, &dhcp_reply(DhcpMessageType::Ack, xid, DNS_1));
    assert_eq!(rig.handed(Kind::Dhcp), 2);
    assert_lease(&rig, Some(DNS_1));

    // No answer to the unicast renewals (the server "went away"); at T2 worker 0 rebinds by
    // broadcast, and a server answers with another DNS server: every worker takes it.
    let acked = rig.now;
    let (kind, xid) = loop {
        let (kind, xid) = next_request(&mut rig, Duration::from_secs(LEASE.into()));
        if rig.now >= acked + Duration::from_millis(87_500) {
            break (kind, xid);
        }
    };
    assert_eq!(kind, DhcpMessageType::Request);
    assert_lease(&rig, Some(DNS_1));
    rig.deliver(1, &dhcp_reply(DhcpMessageType::Ack, xid, DNS_2));
    assert_lease(&rig, Some(DNS_2));

    // Then nothing answers: at expiry every worker loses the address, route and servers.
    let renewed = rig.now;
    while rig.now < renewed + Duration::from_secs(LEASE.into()) + Duration::from_secs(1) {
        rig.now += Duration::from_secs(1);
        rig.poll();
        rig.sent(0);
        rig.sent(1);
    }
    assert_lease(&rig, None);
    let c = rig.counters.snapshot();
    assert_eq!((c.of(Kind::Dhcp), c.dropped, c.malformed), (3, 0, 0));
}

#[test]
fn malformed_dhcp_replies_are_dropped_and_counted_on_any_worker() {
    let mut rig = Rig::new(2, Ipv4Setting::Dhcp);
    let (_, xid) = next_request(&mut rig, Duration::from_secs(5));
    let good = dhcp_reply(DhcpMessageType::Offer, xid, DNS_1);
    // The DHCP magic cookie (UDP payload bytes 236..240) broken.
    let mut bad = good.clone();
    bad[42 + 236] ^= 0xff;
    rig.deliver(1, &bad);
    rig.deliver(0, &bad);
    // Cut short behind an honest UDP length.
    let cut = udp_frame(LEASED, 67, 68, &good[42..42 + 100]);
    rig.deliver(1, &cut);
    let c = rig.counters.snapshot();
    assert_eq!((c.of(Kind::Dhcp), c.malformed), (0, 3));
    // Nothing was taken from them: the client still discovers.
    let (kind, _) = next_request(&mut rig, Duration::from_secs(15));
    assert_eq!(kind, DhcpMessageType::Discover);
    assert_lease(&rig, None);
}

/// An ICMPv4 error of `kind` from the server, quoting a TCP segment from `LEASED:port`, cut
/// to `quote` bytes.
fn icmp_error(kind: u8, port: u16, quote: usize) -> Vec<u8> {
    let mut quoted = vec![0x45, 0, 0, 48, 0, 0, 0x40, 0, 64, 6, 0, 0];
    quoted.extend_from_slice(&LEASED.octets());
    quoted.extend_from_slice(&SERVER.octets());
    quoted.extend_from_slice(&port.to_be_bytes());
    quoted.extend_from_slice(&443u16.to_be_bytes());
    quoted.extend_from_slice(&[0, 0, 0, 1]);
    quoted.truncate(quote);
    let mut icmp = vec![kind, 4, 0, 0, 0, 0, 0x05, 0xdc];
    icmp.extend_from_slice(&quoted);
    let mut f = vec![0u8; 14 + 20];
    EthernetRepr {
        src_addr: EthernetAddress(SERVER_MAC),
        dst_addr: EthernetAddress(MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: SERVER,
        dst_addr: LEASED,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.len(),
        hop_limit: 64,
    }
    .emit(
        &mut Ipv4Packet::new_unchecked(&mut f[14..]),
        &ChecksumCapabilities::default(),
    );
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn icmp_errors_go_to_the_worker_whose_port_they_quote() {
    let mut rig = Rig::new(
        3,
        Ipv4Setting::Static {
            addr: LEASED,
            prefix: 24,
            gateway: Some(SERVER),
        },
    );
    rig.poll();
    let of = |k: usize| *mesh::ports_of(k, 3).start() + 11;
    // Fragmentation needed and time exceeded for worker 0's and worker 2's connections, on
    // worker 1's queue: handed over. Worker 1's own: kept.
    for (kind, port) in [(3, of(0)), (11, of(2)), (3, of(1)), (3, 80)] {
        rig.deliver(1, &icmp_error(kind, port, 28));
    }
    assert_eq!(rig.handed(Kind::Icmp), 2);
    // Cut short of the quoted ports: dropped and counted.
    for quote in [0, 19, 22] {
        rig.deliver(1, &icmp_error(3, of(0), quote));
    }
    let c = rig.counters.snapshot();
    assert_eq!((c.of(Kind::Icmp), c.malformed, c.dropped), (2, 3, 0));
    assert_eq!(c.of(Kind::Tcp) + c.of(Kind::Dhcp), 0);
}
