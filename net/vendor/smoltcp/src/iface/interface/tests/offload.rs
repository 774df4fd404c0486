//! paf patch 23: a TCP segment larger than the MTU, built for a device that segments it
//! (`DeviceCapabilities::segmentation`), leaves with its segment size in the packet's metadata,
//! over IPv6 as over IPv4.
//!
//! The same transfer runs over both families through a device that records what `set_meta`
//! told it with every frame. Upstream's IPv6 branch of `dispatch_ip` dropped such a segment
//! (too big for the MTU) and never passed the metadata on; only the retransmissions, one MSS
//! each, then got through.

use std::collections::VecDeque;
use std::vec::Vec;

use crate::iface::{Config, Interface, SocketSet};
use crate::phy::{self, Checksum, Device, DeviceCapabilities, Medium, PacketMeta};
use crate::socket::tcp;
use crate::time::{Duration, Instant};
use crate::wire::*;

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
/// Ethernet payload: 1,500 bytes.
const MTU: usize = 1514;
/// What the device is willing to cut up.
const SEGMENTABLE: usize = 65535;
const BYTES: usize = 200_000;

/// A frame as the device got it, with the metadata set for it.
struct Sent {
    frame: Vec<u8>,
    meta: PacketMeta,
}

struct SegmentingDevice {
    rx: VecDeque<Vec<u8>>,
    sent: Vec<Sent>,
}

struct Rx(Vec<u8>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a> {
    sent: &'a mut Vec<Sent>,
    meta: PacketMeta,
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.sent.push(Sent {
            frame,
            meta: self.meta,
        });
        r
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.meta = meta;
    }
}

impl Device for SegmentingDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            Rx(frame),
            Tx {
                sent: &mut self.sent,
                meta: PacketMeta::default(),
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            sent: &mut self.sent,
            meta: PacketMeta::default(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let segmentable = core::num::NonZeroUsize::new(SEGMENTABLE);
        DeviceCapabilities {
            medium: Medium::Ethernet,
            max_transmission_unit: MTU,
            // The device (a TAP with the virtio-net header) completes TCP checksums.
            checksum: phy::ChecksumCapabilities {
                tcp: Checksum::None,
                ..Default::default()
            },
            segmentation: phy::SegmentationCapabilities {
                tcpv4: segmentable,
                tcpv6: segmentable,
            },
            ..Default::default()
        }
    }
}

/// A frame from `peer` to `ours` carrying `repr`.
fn from_peer(ours: IpAddress, peer: IpAddress, repr: &TcpRepr) -> Vec<u8> {
    let ip = IpRepr::new(peer, ours, IpProtocol::Tcp, repr.buffer_len(), 64);
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: match ip {
            IpRepr::Ipv4(_) => EthernetProtocol::Ipv4,
            IpRepr::Ipv6(_) => EthernetProtocol::Ipv6,
        },
    };
    let mut frame = vec![0; eth.buffer_len() + ip.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    let caps = phy::ChecksumCapabilities::default();
    ip.emit(&mut f.payload_mut()[..], &caps);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut f.payload_mut()[ip.header_len()..]),
        &peer,
        &ours,
        &caps,
    );
    frame
}

fn peer_segment(ours: IpAddress, peer: IpAddress, ack: u32, control: TcpControl) -> Vec<u8> {
    let syn = control == TcpControl::Syn;
    from_peer(
        ours,
        peer,
        &TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control,
            seq_number: TcpSeqNumber(if syn { 1000 } else { 1001 }),
            ack_number: (!syn).then_some(TcpSeqNumber(ack as i32)),
            window_len: 65535,
            window_scale: Some(7),
            // What a peer on a 1,500-byte link says for either family.
            max_seg_size: syn.then_some(match ours {
                IpAddress::Ipv4(_) => 1460,
                IpAddress::Ipv6(_) => 1440,
            }),
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        },
    )
}

/// The sequence number and TCP payload of a frame we sent, `None` if it is not TCP (an
/// IPv6 interface also sends ICMPv6); checks that the IP length field tells the frame's
/// length (what the device reads to cut it up).
fn segment(frame: &[u8]) -> Option<(u32, Vec<u8>)> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let (next, tcp) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert_eq!(usize::from(ip.total_len()), frame.len() - 14);
            (ip.next_header(), ip.payload())
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            assert_eq!(usize::from(ip.payload_len()), frame.len() - 14 - 40);
            (ip.next_header(), ip.payload())
        }
        other => panic!("{other} frame"),
    };
    if next != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(tcp).unwrap();
    Some((tcp.seq_number().0 as u32, tcp.payload().to_vec()))
}

/// The last TCP segment among `sent`.
fn last_segment(sent: &[Sent]) -> Option<(u32, Vec<u8>)> {
    sent.iter().rev().find_map(|s| segment(&s.frame))
}

/// Send `BYTES` from `ours` to a peer that acknowledges everything at once; return the frames.
fn transfer(ours: IpAddress, peer: IpAddress, prefix: u8) -> Vec<Sent> {
    let mut device = SegmentingDevice {
        rx: VecDeque::new(),
        sent: Vec::new(),
    };
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(OUR_MAC)),
        &mut device,
        Instant::ZERO,
    );
    iface.update_ip_addrs(|a| a.push(IpCidr::new(ours, prefix)).unwrap());
    iface
        .inner
        .neighbor_cache
        .fill(peer, PEER_MAC.into(), Instant::ZERO);
    let mut sockets = SocketSet::new(vec![]);
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
    );
    // Nothing but the device's limit and the peer's window sizes the segments.
    socket.set_congestion_control(tcp::CongestionControl::None);
    socket.listen(80).unwrap();
    let handle = sockets.add(socket);

    let mut now = Instant::from_millis(1);
    device
        .rx
        .push_back(peer_segment(ours, peer, 0, TcpControl::Syn));
    iface.poll(now, &mut device, &mut sockets);
    let (isn, _) = last_segment(&device.sent).expect("no SYN-ACK");
    let mut acked = isn.wrapping_add(1);
    device
        .rx
        .push_back(peer_segment(ours, peer, acked, TcpControl::None));
    iface.poll(now, &mut device, &mut sockets);

    let data: Vec<u8> = (0..BYTES as u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut written = 0;
    while acked != isn.wrapping_add(1 + BYTES as u32) {
        now += Duration::from_millis(1);
        let s = sockets.get_mut::<tcp::Socket>(handle);
        written += s.send_slice(&data[written..]).unwrap();
        let before = device.sent.len();
        iface.poll(now, &mut device, &mut sockets);
        if let Some((seq, payload)) = last_segment(&device.sent[before..]) {
            acked = seq.wrapping_add(payload.len() as u32);
            device
                .rx
                .push_back(peer_segment(ours, peer, acked, TcpControl::None));
            iface.poll(now, &mut device, &mut sockets);
        }
        assert!(now < Instant::from_secs(10), "the transfer did not finish");
    }
    // The stream is whole and in order: nothing was dropped and sent again.
    let stream: Vec<u8> = device
        .sent
        .iter()
        .filter_map(|s| segment(&s.frame))
        .flat_map(|(_, payload)| payload)
        .collect();
    assert!(stream == data, "the payloads differ from what was written");
    device.sent
}

/// Every frame over the MTU asks the device to cut it into segments of the peer's MSS (the
/// last one may be shorter); returns how many there were.
fn check_large_frames(sent: &[Sent], mss: usize) -> usize {
    let mut large = 0;
    for s in sent {
        let Some((_, payload)) = segment(&s.frame) else {
            continue;
        };
        if s.frame.len() > MTU {
            large += 1;
            let cut = s
                .meta
                .segmentation_offload_size
                .map(|n| usize::from(n.get()));
            assert_eq!(cut, Some(mss), "a frame of {} bytes", s.frame.len());
            assert!(payload.len() > mss);
        } else if payload.len() <= mss {
            assert_eq!(s.meta.segmentation_offload_size, None);
        }
    }
    large
}

#[test]
fn segments_larger_than_the_mtu_leave_with_their_segment_size_over_ipv4() {
    let ours = Ipv4Address::new(198, 18, 0, 2);
    let peer = Ipv4Address::new(198, 18, 0, 1);
    let sent = transfer(ours.into(), peer.into(), 24);
    let large = check_large_frames(&sent, 1460);
    assert!(large >= 3, "{large} frames over the MTU");
}

#[test]
fn segments_larger_than_the_mtu_leave_with_their_segment_size_over_ipv6() {
    let ours = Ipv6Address::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 2);
    let peer = Ipv6Address::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 1);
    let sent = transfer(ours.into(), peer.into(), 64);
    let large = check_large_frames(&sent, 1440);
    assert!(large >= 3, "{large} frames over the MTU");
}
