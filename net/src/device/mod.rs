//! Devices: where Ethernet frames come from and go to.
//!
//! [`Device`] is the one smoltcp `phy::Device` the [`Stack`](crate::Stack) drives. It wraps a
//! [`Link`] — a Linux TAP ([`Tap`]) or one end of an in-memory [`wire`] — and optionally writes
//! every frame, both directions, to a pcap file ([`Device::capture_to`]).
//!
//! Contract:
//! - frame buffers are owned by the device and reused: no allocation per frame (a pcap capture
//!   allocates one for each frame sent in two parts);
//! - on a TAP with the virtio-net header, a TCP segment with [`GATHER_FROM`] bytes of payload
//!   or more goes out with one `writev(2)` of its headers and its payload as it lies in the
//!   socket's send buffer (smoltcp patch 22), not copied into the frame buffer first;
//! - `receive` returns `None` when the link has nothing now (the TAP would block); the stack calls
//!   it until then, so each wake-up drains the device;
//! - an IO error never panics and never stops the device: it is counted in [`Stats`], logged at
//!   most once a second-ish (every 1024th repeat), and the frame is dropped.

pub mod tap;
pub mod wire;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use smoltcp::phy::{self, DeviceCapabilities, Medium, PcapLinkType, PcapSink};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{IpAddress, IpEndpoint};

pub use tap::Tap;
pub use wire::{Faults, WireEnd};

/// Ethernet header length; the frame buffer is the IP MTU plus this.
pub const ETHERNET_HEADER: usize = 14;

/// Largest IP MTU a TAP accepts (a 64 KiB frame less the Ethernet header).
pub const MAX_MTU: usize = 65535 - ETHERNET_HEADER;

/// Frame counters of a device. Plain cells: a device lives on one thread.
#[derive(Debug, Default)]
pub struct Stats {
    /// Frames received from the link.
    pub rx_frames: Cell<u64>,
    /// Bytes received from the link.
    pub rx_bytes: Cell<u64>,
    /// Frames sent to the link.
    pub tx_frames: Cell<u64>,
    /// Bytes sent to the link.
    pub tx_bytes: Cell<u64>,
    /// Receive errors (other than "would block").
    pub rx_errors: Cell<u64>,
    /// Frames that could not be sent (link error, link full, oversized).
    pub tx_dropped: Cell<u64>,
}

fn bump(c: &Cell<u64>, by: u64) -> u64 {
    let v = c.get().wrapping_add(by);
    c.set(v);
    v
}

/// A snapshot of [`Stats`], for callers on other threads or for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Frames dropped on send.
    pub tx_dropped: u64,
}

/// The link under a [`Device`].
#[derive(Debug)]
pub enum Link {
    /// A Linux TAP device.
    Tap(Tap),
    /// One end of an in-memory wire.
    Wire(WireEnd),
}

/// The smoltcp device of a stack: a [`Link`] plus reusable frame buffers, counters and an
/// optional pcap capture.
pub struct Device {
    link: Link,
    mtu: usize,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    stats: Stats,
    capture: RefCell<Option<Box<dyn PcapSink>>>,
    /// Destination port of the frame last read, when it is a TCP SYN without ACK.
    last_syn: Option<Syn>,
    /// Bytes before each frame in the buffers: the TAP's virtio-net header, when on.
    hdr: usize,
    /// The kernel segments our large TCP segments (and hands us its own).
    segmentation: bool,
    /// Length of a frame read ahead by [`Device::prefetch`], not yet handed to smoltcp.
    pending: Option<usize>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("link", &self.link)
            .field("mtu", &self.mtu)
            .field("stats", &self.stats)
            .field("capturing", &self.capture.borrow().is_some())
            .finish()
    }
}

impl Device {
    /// Wrap a link. The MTU is the link's (see [`Tap::mtu`], [`WireEnd::mtu`]).
    pub fn new(link: Link) -> Device {
        let mtu = match &link {
            Link::Tap(t) => t.mtu(),
            Link::Wire(w) => w.mtu(),
        };
        let offload = match &link {
            Link::Tap(t) => t.offload(),
            Link::Wire(_) => crate::Offload::Off,
        };
        let hdr = if offload == crate::Offload::Off {
            0
        } else {
            tap::VNET_HDR
        };
        let segmentation = offload == crate::Offload::Full;
        // With send offloads a TCP segment can be as large as an IP packet can be.
        let tx_frame = if segmentation {
            ETHERNET_HEADER + 65535
        } else {
            mtu + ETHERNET_HEADER
        };
        // With receive offloads the kernel hands over TCP super-segments of up to 64 KiB.
        let rx_frame = if segmentation {
            ETHERNET_HEADER + 65535
        } else {
            mtu + ETHERNET_HEADER
        };
        Device {
            link,
            mtu,
            rx_buf: vec![0; hdr + rx_frame],
            tx_buf: vec![0; hdr + tx_frame],
            stats: Stats::default(),
            capture: RefCell::new(None),
            last_syn: None,
            hdr,
            segmentation,
            pending: None,
        }
    }

    /// Write every frame, received and sent, to a pcap file (Ethernet link type) that tcpdump,
    /// tshark and wireshark read.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn capture_to(&mut self, path: &Path) -> io::Result<()> {
        let file = File::create(path)?;
        self.capture_with(Box::new(FileCapture {
            out: BufWriter::new(file),
            failed: false,
        }));
        Ok(())
    }

    /// Capture into any pcap sink (e.g. a `Vec<u8>` in tests).
    pub fn capture_with(&mut self, mut sink: Box<dyn PcapSink>) {
        sink.global_header(PcapLinkType::Ethernet);
        *self.capture.borrow_mut() = Some(sink);
    }

    /// Flush the capture file, if any.
    pub fn flush_capture(&self) {
        if let Some(sink) = self.capture.borrow_mut().as_mut() {
            sink.flush();
        }
    }

    /// The IP MTU of the link.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The link under this device.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Mutable access to the link (e.g. to change wire faults mid-test).
    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            rx_frames: s.rx_frames.get(),
            rx_bytes: s.rx_bytes.get(),
            tx_frames: s.tx_frames.get(),
            tx_bytes: s.tx_bytes.get(),
            rx_errors: s.rx_errors.get(),
            tx_dropped: s.tx_dropped.get(),
        }
    }

    /// Read the next frame ahead (if not already) and show it, so the stack can choose which
    /// socket set smoltcp should process it with; the next `receive` hands out this frame.
    /// `None` when the link has nothing now.
    pub fn prefetch(&mut self, now: SmolInstant) -> Option<&[u8]> {
        if self.pending.is_none() {
            self.pending = Some(self.read_frame(now)?);
        }
        self.pending.map(|n| &self.rx_buf[self.hdr..self.hdr + n])
    }

    /// Hold `frame` (a whole Ethernet frame whose checksums are complete, such as one another
    /// worker's device read) as if it had just been read from the link: the next
    /// [`Device::prefetch`] shows it and the next `receive` hands it out. A frame already held is
    /// replaced; one longer than the receive buffer is dropped (counted as a receive error).
    pub fn inject(&mut self, frame: &[u8]) {
        let Some(buf) = self.rx_buf.get_mut(self.hdr..self.hdr + frame.len()) else {
            bump(&self.stats.rx_errors, 1);
            return;
        };
        buf.copy_from_slice(frame);
        self.last_syn = peek_syn(frame);
        self.pending = Some(frame.len());
    }

    /// Whether the frame last received was a TCP SYN (without ACK): a listener may have used up
    /// a listening socket. A cheap header peek, so the stack refills listener pools only then.
    pub fn last_rx_was_syn(&self) -> bool {
        self.last_syn.is_some()
    }

    /// The frame [`Device::prefetch`] holds, when it is a TCP SYN without ACK (a connection
    /// attempt): who sends it and to which port.
    pub fn prefetched_syn(&self) -> Option<Syn> {
        self.pending.and(self.last_syn)
    }

    /// Drop the frame [`Device::prefetch`] holds without handing it to smoltcp.
    pub fn drop_prefetched(&mut self) {
        self.pending = None;
    }

    /// When the link will next have a frame for us without being woken by the OS (the wire's
    /// latency queue); `None` for a TAP.
    pub fn next_rx_at(&self) -> Option<SmolInstant> {
        match &self.link {
            Link::Tap(_) => None,
            Link::Wire(w) => w.next_delivery(),
        }
    }

    /// Read the next usable frame; frames too short or with a virtio-net header that does not
    /// fit are counted as receive errors and skipped (the loop goes on to the next one, so a bad
    /// frame never ends a drain early).
    fn read_frame(&mut self, now: SmolInstant) -> Option<usize> {
        self.last_syn = None;
        loop {
            let result = match &mut self.link {
                Link::Tap(t) => t.recv(&mut self.rx_buf),
                Link::Wire(w) => w.recv(now, &mut self.rx_buf),
            };
            let n = match result {
                Ok(Some(n)) => n,
                Ok(None) => return None,
                Err(e) => {
                    let count = bump(&self.stats.rx_errors, 1);
                    if count.is_power_of_two() || count.is_multiple_of(1024) {
                        log::warn!("device receive error #{count}: {e}");
                    }
                    return None;
                }
            };
            if n < self.hdr + ETHERNET_HEADER || !self.finish_offload(n) {
                // Nothing smoltcp could use.
                bump(&self.stats.rx_errors, 1);
                continue;
            }
            let n = n - self.hdr;
            self.last_syn = peek_syn(&self.rx_buf[self.hdr..self.hdr + n]);
            bump(&self.stats.rx_frames, 1);
            bump(&self.stats.rx_bytes, n as u64);
            return Some(n);
        }
    }

    /// Check the virtio-net header of the frame of `n` bytes (header included) in the receive
    /// buffer, and verify a TCP checksum the kernel did not vouch for (smoltcp does not verify
    /// TCP checksums behind the header); `false` if the header is unusable or the checksum
    /// wrong. See [`receive_offload`].
    fn finish_offload(&mut self, n: usize) -> bool {
        if self.hdr == 0 {
            return true;
        }
        let capturing = self.capture.borrow().is_some();
        let (head, frame) = self.rx_buf[..n].split_at_mut(self.hdr);
        let mut vnet = [0u8; tap::VNET_HDR];
        vnet.copy_from_slice(head);
        receive_offload(&vnet, frame, capturing)
    }
}

/// What a received frame's virtio-net header leaves to do before smoltcp sees the frame: a
/// header that does not fit is refused; a TCP checksum the kernel neither left partial nor
/// verified is verified; a partial TCP checksum (the kernel's own segment, never on a wire) is
/// trusted as it is, since smoltcp does not read TCP checksums, and completed only when
/// `capturing` (a capture file shows the frame as a receiver on a wire would have seen it). So
/// an upload's bytes are not summed at all: summing a 64 KiB super-segment was a tenth of
/// paf's CPU. Any other partial checksum (UDP: DNS answers, DHCP) is completed, as smoltcp
/// verifies those.
fn receive_offload(vnet: &[u8; tap::VNET_HDR], frame: &mut [u8], capturing: bool) -> bool {
    let fits = if capturing || tcp_segment(frame).is_none() {
        tap::complete_checksum(vnet, frame)
    } else {
        tap::header_fits(vnet, frame.len())
    };
    fits && (tap::checksum_trusted(vnet) || tap::tcp_checksum_ok(frame))
}

/// Where an Ethernet frame's TCP header starts, and its IP source address (4 or 16 bytes):
/// IPv4, or IPv6 without extension headers. `None` for anything else. The one header peek the
/// device, the TAP's offload header and the stack's sharding share; smoltcp parses for real.
pub(crate) fn tcp_segment(frame: &[u8]) -> Option<(&[u8], usize)> {
    match frame.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
            (frame.get(23)? == &6 && ihl >= 20)
                .then_some((frame.get(26..30)?, ETHERNET_HEADER + ihl))
        }
        [0x86, 0xdd] => {
            (frame.get(20)? == &6).then_some((frame.get(22..38)?, ETHERNET_HEADER + 40))
        }
        _ => None,
    }
}

/// The destination port of an Ethernet frame carrying a TCP segment with SYN set and ACK clear.
/// Anything unparseable is `None`.
/// A TCP SYN without ACK, as peeked from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syn {
    /// The sender's address and port.
    pub from: IpEndpoint,
    /// The destination port.
    pub port: u16,
}

fn peek_syn(frame: &[u8]) -> Option<Syn> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let (src, at) = tcp_segment(frame)?;
    let flags = *frame.get(at + 13)?;
    if flags & (SYN | ACK) != SYN {
        return None;
    }
    let ports = frame.get(at..at + 4)?;
    let addr = match src.len() {
        4 => IpAddress::from(Ipv4Addr::from(<[u8; 4]>::try_from(src).ok()?)),
        16 => IpAddress::from(Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?)),
        _ => return None,
    };
    Some(Syn {
        from: IpEndpoint::new(addr, u16::from_be_bytes([ports[0], ports[1]])),
        port: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

impl phy::Device for Device {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, now: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let n = match self.pending.take() {
            Some(n) => n,
            None => self.read_frame(now)?,
        };
        let rx = RxToken {
            frame: &self.rx_buf[self.hdr..self.hdr + n],
            capture: &self.capture,
            now,
        };
        let tx = TxToken {
            link: &self.link,
            buf: &mut self.tx_buf,
            hdr: self.hdr,
            gso: None,
            stats: &self.stats,
            capture: &self.capture,
            now,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, now: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken {
            link: &self.link,
            buf: &mut self.tx_buf,
            hdr: self.hdr,
            gso: None,
            stats: &self.stats,
            capture: &self.capture,
            now,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETHERNET_HEADER;
        if self.hdr > 0 {
            // The kernel completes our TCP checksums (and segments large TCP segments); the
            // device verifies received ones (`finish_offload`).
            caps.checksum.tcp = phy::Checksum::None;
        }
        if self.segmentation {
            let max = std::num::NonZeroUsize::new(ETHERNET_HEADER + 65535);
            caps.segmentation.tcpv4 = max;
            caps.segmentation.tcpv6 = max;
        }
        caps
    }
}

/// A received frame, borrowed from the device's receive buffer.
pub struct RxToken<'a> {
    frame: &'a [u8],
    capture: &'a RefCell<Option<Box<dyn PcapSink>>>,
    now: SmolInstant,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        if let Some(sink) = self.capture.borrow_mut().as_mut() {
            sink.packet(self.now, self.frame);
        }
        f(self.frame)
    }
}

/// Permission to send one frame, built in the device's reusable transmit buffer.
pub struct TxToken<'a> {
    link: &'a Link,
    buf: &'a mut Vec<u8>,
    /// Header room before the frame (the virtio-net header).
    hdr: usize,
    /// Segment size the stack asked the device to cut this frame into.
    gso: Option<u16>,
    stats: &'a Stats,
    capture: &'a RefCell<Option<Box<dyn PcapSink>>>,
    now: SmolInstant,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let hdr = self.hdr;
        if self.buf.len() < hdr + len {
            // smoltcp never asks for more than the capabilities we report; be safe anyway.
            self.buf.resize(hdr + len, 0);
        }
        let (head, rest) = self.buf.split_at_mut(hdr);
        let frame = &mut rest[..len];
        let r = f(frame);
        if let Some(sink) = self.capture.borrow_mut().as_mut() {
            sink.packet(self.now, frame);
        }
        let sent = match self.link {
            Link::Tap(t) if hdr > 0 => {
                let mut vnet = [0u8; tap::VNET_HDR];
                tap::vnet_header(&mut vnet, frame, self.gso);
                head.copy_from_slice(&vnet);
                t.send(&self.buf[..hdr + len])
            }
            Link::Tap(t) => t.send(frame),
            Link::Wire(w) => w.send(self.now, frame),
        };
        count_sent(self.stats, sent, len);
        r
    }

    /// A TCP segment whose payload stays in the socket's send buffer (smoltcp asks this only
    /// of a device that completes TCP checksums: a TAP with the virtio-net header). The
    /// headers are built in the device's buffer behind the virtio-net header, and the frame
    /// goes out with one `writev(2)`: the payload is copied once, by the kernel, instead of
    /// into the buffer first.
    fn consume_with_tail<R, F: FnOnce(&mut [u8]) -> R>(
        self,
        head_len: usize,
        tail: &[u8],
        f: F,
    ) -> R {
        let hdr = self.hdr;
        let tap = match self.link {
            Link::Tap(t) if hdr > 0 && tail.len() >= GATHER_FROM => t,
            // A short payload is copied (cheaper than the gathering write), and the other
            // links are never asked (they have smoltcp compute TCP checksums): built whole.
            _ => return phy::consume_whole(self, head_len, tail, f),
        };
        if self.buf.len() < hdr + head_len {
            self.buf.resize(hdr + head_len, 0);
        }
        let (room, rest) = self.buf.split_at_mut(hdr);
        let head = &mut rest[..head_len];
        let r = f(head);
        let len = head_len + tail.len();
        if let Some(sink) = self.capture.borrow_mut().as_mut() {
            let mut frame = Vec::with_capacity(len);
            frame.extend_from_slice(head);
            frame.extend_from_slice(tail);
            sink.packet(self.now, &frame);
        }
        let mut vnet = [0u8; tap::VNET_HDR];
        tap::vnet_header_for(&mut vnet, head, len, self.gso);
        room.copy_from_slice(&vnet);
        let sent = tap.send_parts(&self.buf[..hdr + head_len], tail);
        count_sent(self.stats, sent, len);
        r
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        self.gso = meta.segmentation_offload_size.map(|n| n.get());
    }
}

/// Shortest TCP payload a TAP sends from the socket's buffer with a gathering write
/// ([`phy::TxToken::consume_with_tail`]); a shorter one is copied behind its headers and sent
/// with one `write(2)`. Measured on the 2-core VM: for responses of a few hundred bytes the
/// gathering write cost 1.8% of the keep-alive rate and 2.6% of the proxy's, while for 64 KiB
/// bodies it gained 8%.
pub const GATHER_FROM: usize = 2048;

/// Count a frame of `len` bytes the link took (or did not).
fn count_sent(stats: &Stats, sent: io::Result<bool>, len: usize) {
    match sent {
        Ok(true) => {
            bump(&stats.tx_frames, 1);
            bump(&stats.tx_bytes, len as u64);
        }
        Ok(false) => {
            bump(&stats.tx_dropped, 1);
        }
        Err(e) => {
            let count = bump(&stats.tx_dropped, 1);
            if count.is_power_of_two() || count.is_multiple_of(1024) {
                log::warn!("device send error #{count}: {e}");
            }
        }
    }
}

/// A pcap sink that appends to a shared in-memory buffer (tests read it back).
#[derive(Clone, Debug, Default)]
pub struct MemoryCapture(pub std::rc::Rc<RefCell<Vec<u8>>>);

impl PcapSink for MemoryCapture {
    fn write(&mut self, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

/// A pcap file sink that logs a write error once and then stops capturing, instead of panicking
/// like smoltcp's blanket `Write` sink.
struct FileCapture {
    out: BufWriter<File>,
    failed: bool,
}

impl PcapSink for FileCapture {
    fn write(&mut self, data: &[u8]) {
        if !self.failed {
            if let Err(e) = self.out.write_all(data) {
                log::error!("pcap capture stopped: {e}");
                self.failed = true;
            }
        }
    }

    fn flush(&mut self) {
        if !self.failed {
            if let Err(e) = Write::flush(&mut self.out) {
                log::error!("pcap capture stopped: {e}");
                self.failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tap::tests::{ipv4_tcp, verify};
    use super::*;

    /// A received super-segment as the kernel hands it over: partial checksum, `NEEDS_CSUM`.
    fn partial(payload: usize) -> ([u8; tap::VNET_HDR], Vec<u8>) {
        let mut f = ipv4_tcp(payload);
        let mut hdr = [0u8; tap::VNET_HDR];
        tap::vnet_header(&mut hdr, &mut f, Some(1460));
        (hdr, f)
    }

    #[test]
    fn a_partial_checksum_is_trusted_as_it_is_and_completed_only_for_a_capture() {
        for payload in [0, 1, 1460, 65_000] {
            let (hdr, f) = partial(payload);
            assert_ne!(verify(&f), 0, "the kernel left the sum partial ({payload})");
            let mut plain = f.clone();
            assert!(receive_offload(&hdr, &mut plain, false), "{payload}");
            assert_eq!(plain, f, "not summed, not touched ({payload})");
            let mut captured = f.clone();
            assert!(receive_offload(&hdr, &mut captured, true), "{payload}");
            assert_eq!(
                verify(&captured),
                0,
                "completed for the capture ({payload})"
            );
        }
    }

    #[test]
    fn a_partial_udp_checksum_is_completed_since_smoltcp_verifies_it() {
        // The same frame as UDP (a DNS answer from the kernel's side of the TAP).
        let mut f = ipv4_tcp(100);
        f[23] = 17;
        f[34 + 4..34 + 6].copy_from_slice(&108u16.to_be_bytes());
        // NEEDS_CSUM, the sum from the UDP header (34) into its checksum field (offset 6).
        let hdr = [1, 0, 0, 0, 0, 0, 34, 0, 6, 0];
        let mut done = f.clone();
        assert!(tap::complete_checksum(&hdr, &mut done));
        assert_ne!(done, f, "the sum was partial");
        let mut got = f.clone();
        assert!(receive_offload(&hdr, &mut got, false));
        assert_eq!(got, done, "completed without a capture too");
    }

    #[test]
    fn an_unvouched_checksum_is_verified_and_a_bad_header_refused_either_way() {
        // Completed by a sender, then handed over with no offload flag: verified.
        let (hdr, mut good) = partial(1001);
        assert!(tap::complete_checksum(&hdr, &mut good));
        let none = [0u8; tap::VNET_HDR];
        for capturing in [false, true] {
            assert!(receive_offload(&none, &mut good.clone(), capturing));
            let mut bad = good.clone();
            *bad.last_mut().unwrap() ^= 0x40;
            assert!(
                !receive_offload(&none, &mut bad, capturing),
                "corrupt dropped"
            );
            // A header whose checksum start lies past the frame.
            let mut past = hdr;
            past[6..8].copy_from_slice(&(good.len() as u16).to_le_bytes());
            assert!(!receive_offload(&past, &mut good.clone(), capturing));
        }
    }
}
