//! paf patch 22: a TCP payload handed to the device as the frame's tail
//! (`TxToken::consume_with_tail`) instead of being copied into the device's buffer.
//!
//! The same exchange (a handshake, then data that wraps around the socket's send buffer) runs
//! over two devices that differ only in how they take a frame with a tail: one gathers the
//! head and the tail itself, the other uses the trait's default (one buffer). Every frame must
//! come out byte for byte the same, and a device that computes TCP checksums in software
//! must never be asked to take a tail.

use std::collections::VecDeque;
use std::vec::Vec;

use crate::iface::{Config, Interface, SocketSet};
use crate::phy::{self, Checksum, Device, DeviceCapabilities, Medium};
use crate::socket::tcp;
use crate::time::Instant;
use crate::wire::*;

const OURS: Ipv4Address = Ipv4Address::new(192, 168, 1, 1);
const PEER: Ipv4Address = Ipv4Address::new(192, 168, 1, 2);
const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

/// A frame as the device sent it: the head the interface built, and the tail when it was
/// handed over apart.
#[derive(Debug)]
struct Sent {
    head: Vec<u8>,
    tail: Option<Vec<u8>>,
}

impl Sent {
    fn frame(&self) -> Vec<u8> {
        let mut f = self.head.clone();
        f.extend_from_slice(self.tail.as_deref().unwrap_or(&[]));
        f
    }
}

struct TailDevice {
    rx: VecDeque<Vec<u8>>,
    sent: Vec<Sent>,
    /// Take tails apart (else: the trait's default, one buffer).
    gather: bool,
    tcp_checksum: Checksum,
}

struct Rx(Vec<u8>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a> {
    sent: &'a mut Vec<Sent>,
    gather: bool,
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut head = vec![0; len];
        let r = f(&mut head);
        self.sent.push(Sent { head, tail: None });
        r
    }

    fn consume_with_tail<R, F: FnOnce(&mut [u8]) -> R>(
        self,
        head_len: usize,
        tail: &[u8],
        f: F,
    ) -> R {
        if !self.gather {
            return phy::consume_whole(self, head_len, tail, f);
        }
        // A head buffer filled with junk: the interface must write all of it.
        let mut head = vec![0xa5; head_len];
        let r = f(&mut head);
        self.sent.push(Sent {
            head,
            tail: Some(tail.to_vec()),
        });
        r
    }
}

impl Device for TailDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            Rx(frame),
            Tx {
                sent: &mut self.sent,
                gather: self.gather,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            sent: &mut self.sent,
            gather: self.gather,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities {
            medium: Medium::Ethernet,
            max_transmission_unit: 1514,
            checksum: phy::ChecksumCapabilities {
                tcp: self.tcp_checksum,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// A frame from the peer to us carrying `repr`, its checksum correct.
fn from_peer(repr: &TcpRepr) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: PEER,
        dst_addr: OURS,
        next_header: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0; eth.buffer_len() + ip.buffer_len() + repr.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &phy::ChecksumCapabilities::default());
    repr.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &PEER.into(),
        &OURS.into(),
        &phy::ChecksumCapabilities::default(),
    );
    frame
}

fn peer_segment(seq: u32, ack: u32, control: TcpControl) -> Vec<u8> {
    from_peer(&TcpRepr {
        src_port: 40000,
        dst_port: 80,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: (control != TcpControl::Syn).then_some(TcpSeqNumber(ack as i32)),
        window_len: 65535,
        window_scale: Some(0),
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    })
}

/// Sequence number and TCP payload of a frame we sent.
fn segment(frame: &[u8]) -> (u32, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(usize::from(ip.total_len()), frame.len() - 14);
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    (tcp.seq_number().0 as u32, tcp.payload().to_vec())
}

/// Run the exchange; return what the device sent and the bytes the application wrote.
fn exchange(gather: bool, tcp_checksum: Checksum) -> (Vec<Sent>, Vec<u8>) {
    let mut device = TailDevice {
        rx: VecDeque::new(),
        sent: Vec::new(),
        gather,
        tcp_checksum,
    };
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(OUR_MAC)),
        &mut device,
        Instant::ZERO,
    );
    iface.update_ip_addrs(|a| a.push(IpCidr::new(OURS.into(), 24)).unwrap());
    iface
        .inner
        .neighbor_cache
        .fill(PEER.into(), PEER_MAC.into(), Instant::ZERO);
    let mut sockets = SocketSet::new(vec![]);
    // A 5,000-byte send buffer: 12,000 bytes written in pieces wrap around it twice.
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 5000]),
        tcp::SocketBuffer::new(vec![0; 5000]),
    );
    socket.set_nagle_enabled(false);
    socket.listen(80).unwrap();
    let handle = sockets.add(socket);

    let mut now = Instant::from_millis(1);
    device.rx.push_back(peer_segment(1000, 0, TcpControl::Syn));
    iface.poll(now, &mut device, &mut sockets);
    let (our_isn, _) = segment(&device.sent.last().unwrap().frame());
    let mut acked = our_isn.wrapping_add(1);
    device
        .rx
        .push_back(peer_segment(1001, acked, TcpControl::None));
    iface.poll(now, &mut device, &mut sockets);

    let data: Vec<u8> = (0..12_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut written = 0;
    while acked != our_isn.wrapping_add(1 + data.len() as u32) {
        now += crate::time::Duration::from_millis(1);
        let s = sockets.get_mut::<tcp::Socket>(handle);
        if written < data.len() {
            // Odd-sized writes, so segments start and end anywhere in the ring.
            let end = (written + 1777).min(data.len());
            written += s.send_slice(&data[written..end]).unwrap();
        }
        let before = device.sent.len();
        iface.poll(now, &mut device, &mut sockets);
        // ACK everything sent so far.
        if let Some(last) = device.sent[before..].last() {
            let (seq, payload) = segment(&last.frame());
            acked = seq.wrapping_add(payload.len() as u32);
            device
                .rx
                .push_back(peer_segment(1001, acked, TcpControl::None));
            iface.poll(now, &mut device, &mut sockets);
        }
        assert!(now < Instant::from_secs(10), "the exchange did not finish");
    }
    (device.sent, data)
}

#[test]
fn a_segment_sent_with_its_payload_apart_is_the_segment_built_in_one_buffer() {
    let (gathered, data) = exchange(true, Checksum::None);
    let (whole, _) = exchange(false, Checksum::None);
    assert_eq!(gathered.len(), whole.len());
    let mut stream = Vec::new();
    let mut tails = 0;
    for (g, w) in gathered.iter().zip(&whole) {
        assert!(w.tail.is_none());
        assert_eq!(g.frame(), w.head, "the frames differ");
        let (_, payload) = segment(&g.frame());
        match &g.tail {
            // A tail is exactly the payload, after the three headers.
            Some(tail) => {
                tails += 1;
                assert!(!tail.is_empty());
                assert_eq!(tail, &payload);
                assert_eq!(g.head.len(), 14 + 20 + 20);
            }
            // Only segments without payload are built whole.
            None => assert!(payload.is_empty()),
        }
        stream.extend_from_slice(&payload);
    }
    assert!(stream == data, "the payloads differ from what was written");
    // 12,000 bytes at most 1,460 per segment, in pieces of 1,777 through a wrapping ring.
    assert!(tails >= 9, "{tails} segments carried a tail");
}

#[test]
fn a_device_that_needs_the_tcp_checksum_from_us_gets_whole_frames() {
    let (sent, data) = exchange(true, Checksum::Both);
    assert!(sent.iter().all(|s| s.tail.is_none()));
    let stream: Vec<u8> = sent.iter().flat_map(|s| segment(&s.head).1).collect();
    let segs: Vec<(u32, usize)> = sent
        .iter()
        .map(|s| {
            let (a, p) = segment(&s.head);
            (a, p.len())
        })
        .collect();
    assert!(
        stream == data,
        "{} bytes against {}: {segs:?}",
        stream.len(),
        data.len()
    );
    // And their checksums are there.
    for s in &sent {
        let eth = EthernetFrame::new_checked(&s.head[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&OURS.into(), &PEER.into()));
    }
}
