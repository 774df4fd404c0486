//! A Linux TAP device opened by name: Ethernet frames without packet-info, non-blocking, its fd
//! ready for mio.
//!
//! The TAP must exist (e.g. `ip tuntap add dev paf0 mode tap`) in the network namespace of the
//! process, or the process must be allowed to create it. The MTU is read from the kernel
//! interface; [`Tap::open`] can set it first (jumbo MTUs up to [`MAX_MTU`](super::MAX_MTU)).
//!
//! A TAP created with `multi_queue` (`IFF_MULTI_QUEUE`) has one queue per open descriptor:
//! [`Tap::open_queues`] attaches `n` of them, one per worker. The kernel picks the queue of a
//! frame towards us by the flow table of the tun driver (the queue that last sent a frame of
//! the same symmetric flow hash, for 3 s), else by that hash; frames we send may go out of
//! any queue. A single-queue TAP takes one descriptor only.
//!
//! The device is opened with a virtio-net header (`IFF_VNET_HDR`) when the kernel allows it:
//! every frame then carries a 10-byte header, and offloads work both ways:
//!
//! - from us, the kernel takes TCP segments up to 64 KiB that it segments itself (TSO) and TCP
//!   checksums it completes (`NEEDS_CSUM`): one `write(2)` carries a window's worth of a bulk
//!   transfer instead of one MTU;
//! - towards us (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`), the kernel hands
//!   over its own TCP super-segments unsegmented, up to 64 KiB, with the checksum left partial:
//!   one `read(2)` carries up to 44 MTU-sized segments of an upload. [`tcp_checksum_ok`]
//!   verifies a TCP checksum the kernel did not vouch for ([`checksum_trusted`]) before smoltcp
//!   (which then skips TCP checksums) sees the frame, so what smoltcp accepts is what a
//!   non-offloading link would have delivered. A partial TCP checksum (the kernel's own
//!   segment, which never crossed a wire) is trusted as it is, as Linux trusts
//!   `CHECKSUM_PARTIAL`: nothing behind the device reads it, so an upload's bytes are not
//!   summed at all. [`complete_checksum`] finishes it where something will read it (a capture
//!   file), and finishes any other partial checksum (UDP), which smoltcp verifies.
//!
//! With [`Offload::Checksum`] the header carries checksum work only: frames stay one MTU each
//! way (as on a link with `ethtool -K tso off gso off gro off`), and the kernel computes the
//! TCP checksums of what we send. Without the header (an old kernel, or [`Offload::Off`]), frames go
//! both ways one MTU at a time with full checksums.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use super::ETHERNET_HEADER;
use crate::Offload;

/// Frames the kernel may queue towards us before it drops (the TAP's `txqueuelen`, which sizes
/// the tun driver's ring). The kernel's default of 1,000 overflows when 1,000 keep-alive clients
/// each send a request while paf is busy with a pass: every drop costs that client a TCP
/// retransmission timeout (≥ 200 ms), which is what the p99 at 1,000 connections measured.
/// [`Tap::open`] raises a smaller queue to this; the cost is kernel memory for frames actually
/// queued, only while paf is behind.
pub const RX_QUEUE_FRAMES: usize = 10_000;

/// Most queues of a multi-queue TAP (the kernel's `MAX_TAP_QUEUES`).
pub const MAX_QUEUES: usize = 256;

/// Length of `struct virtio_net_hdr`.
pub const VNET_HDR: usize = 10;

const IFF_TAP: libc::c_short = 0x0002;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;
const TUN_F_TSO6: libc::c_ulong = 0x04;

const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;

/// An open TAP device.
pub struct Tap {
    file: File,
    name: String,
    mtu: usize,
    /// The offloads in effect.
    offload: Offload,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("offload", &self.offload)
            .finish()
    }
}

impl Tap {
    /// Attach to (or create) the TAP `name`, in non-blocking mode, with send offloads when the
    /// kernel allows them. With `mtu`, set the interface MTU first; otherwise use the one the
    /// kernel has.
    ///
    /// # Errors
    /// The device cannot be opened (no `/dev/net/tun`, no permission, name in use by a TUN), or
    /// the MTU cannot be read or set (out of range).
    pub fn open(name: &str, mtu: Option<usize>) -> io::Result<Tap> {
        Tap::open_with(name, mtu, Offload::Full)
    }

    /// [`Tap::open`] choosing the offloads: with [`Offload::Full`] or [`Offload::Checksum`] the
    /// virtio-net header is asked for, and without it (the kernel refuses) frames are plain.
    ///
    /// # Errors
    /// As [`Tap::open`].
    pub fn open_with(name: &str, mtu: Option<usize>, offload: Offload) -> io::Result<Tap> {
        let mut queues = Tap::open_queues(name, mtu, offload, 1)?;
        Ok(queues.remove(0))
    }

    /// Attach `n` queues of the TAP `name` (1 to [`MAX_QUEUES`]), each its own [`Tap`] with the
    /// same offloads, for one worker each. One queue attaches to a single-queue TAP as well as
    /// to a multi-queue one; more need a TAP created multi-queue (`ip tuntap add dev NAME mode
    /// tap multi_queue`), or made by this call when `name` does not exist.
    ///
    /// # Errors
    /// As [`Tap::open`]; [`io::ErrorKind::InvalidInput`] naming the fix when `n` > 1 and the TAP
    /// is single-queue, or `n` is out of range.
    pub fn open_queues(
        name: &str,
        mtu: Option<usize>,
        offload: Offload,
        n: usize,
    ) -> io::Result<Vec<Tap>> {
        if !(1..=MAX_QUEUES).contains(&n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{n} queues: a TAP has 1 to {MAX_QUEUES}"),
            ));
        }
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TAP name {name:?} must be 1 to 15 bytes"),
            ));
        }
        if let Some(mtu) = mtu {
            if !(576..=super::MAX_MTU).contains(&mtu) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("MTU {mtu} out of range 576..={}", super::MAX_MTU),
                ));
            }
        }
        let segmentation = offload == Offload::Full;
        // The first queue settles how every queue attaches: multi-queue or not (a single-queue
        // TAP refuses the flag with EINVAL), with the virtio-net header or not.
        let first = |multi| match (offload != Offload::Off)
            .then(|| attach(name, true, segmentation, multi))
        {
            Some(Ok(f)) => Ok((f, true)),
            Some(Err(e)) if is_queue_mismatch(&e) => Err(e),
            _ => attach(name, false, false, multi).map(|f| (f, false)),
        };
        let wrap = |e: io::Error| {
            if is_queue_mismatch(&e) {
                attach_error(name, e)
            } else {
                e
            }
        };
        let (file, vnet, multi) = match first(true) {
            Ok((f, vnet)) => (f, vnet, true),
            Err(e) if !is_queue_mismatch(&e) => return Err(e),
            Err(_) if n == 1 => {
                let (f, vnet) = first(false).map_err(wrap)?;
                (f, vnet, false)
            }
            // Single-queue when it attaches without the flag (the probe is closed at once).
            Err(e) if first(false).is_err() => return Err(wrap(e)),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "TAP {name:?} is single-queue and {n} workers need one queue each: \
                         recreate it multi-queue (ip tuntap del dev {name} mode tap; ip tuntap \
                         add dev {name} mode tap multi_queue) or run one worker (workers = 1, \
                         --workers 1)"
                    ),
                ))
            }
        };
        let mut files = vec![file];
        for _ in 1..n {
            files.push(attach(name, vnet, segmentation, multi).map_err(wrap)?);
        }
        if let Some(mtu) = mtu {
            set_mtu(name, mtu)?;
        }
        let mtu = get_mtu(name)?;
        match get_queue_len(name) {
            Ok(q) if q >= RX_QUEUE_FRAMES => {}
            Ok(_) => {
                if let Err(e) = set_queue_len(name, RX_QUEUE_FRAMES) {
                    log::warn!("{e}; bursts of more frames than the queue holds will be dropped");
                }
            }
            Err(e) => log::warn!("cannot read the queue length of {name}: {e}"),
        }
        Ok(files
            .into_iter()
            .map(|file| Tap {
                file,
                name: name.to_string(),
                mtu,
                offload: if vnet { offload } else { Offload::Off },
            })
            .collect())
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The IP MTU of the link, as the kernel reported it when opened.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The offloads in effect (what was asked for, or less when the kernel refused the header).
    pub fn offload(&self) -> Offload {
        self.offload
    }

    /// Read one frame (behind its virtio-net header, when on). `Ok(None)` when nothing is queued.
    ///
    /// # Errors
    /// A read error other than "would block" / "interrupted".
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match sys_read(self.file.as_raw_fd(), buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Write one frame (behind its virtio-net header, when on). `Ok(false)` when the kernel
    /// queue is full and the frame was dropped (TCP retransmits; blocking the loop would be
    /// worse).
    ///
    /// # Errors
    /// A write error other than "would block" / "no buffer space".
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        self.retry_send(|| sys_write(self.file.as_raw_fd(), frame))
    }

    /// Write one frame given in two parts, `head` (the virtio-net header, when on, and the
    /// frame's headers) then `tail` (a TCP payload, from the socket's send buffer), with one
    /// gathering `writev(2)`: the tail is copied once, by the kernel. As [`Tap::send`]
    /// otherwise.
    ///
    /// # Errors
    /// A write error other than "would block" / "no buffer space".
    pub fn send_parts(&self, head: &[u8], tail: &[u8]) -> io::Result<bool> {
        self.retry_send(|| sys_writev(self.file.as_raw_fd(), head, tail))
    }

    fn retry_send(&self, write: impl Fn() -> io::Result<usize>) -> io::Result<bool> {
        loop {
            match write() {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `writev(2)` of two buffers, as a plain system call (see [`sys_read`]).
fn sys_writev(fd: RawFd, head: &[u8], tail: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: tail.as_ptr() as *mut libc::c_void,
            iov_len: tail.len(),
        },
    ];
    // SAFETY: `iov` describes two buffers valid for reads of their lengths for the whole call
    // (the kernel only reads them), and `iov` itself lives until the call returns.
    let n = unsafe { libc::syscall(libc::SYS_writev, fd, iov.as_ptr(), iov.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `read(2)` as a plain system call. libc's `read` is a thread-cancellation point, and marks
/// itself so around every call (`__pthread_enable_asynccancel` and its pair): 2% of the loop's
/// time on a proxied request, two frames read and two written each. paf never cancels a thread.
fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `write(2)` as a plain system call (see [`sys_read`]).
fn sys_write(fd: RawFd, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the whole call.
    let n = unsafe { libc::syscall(libc::SYS_write, fd, frame.as_ptr(), frame.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Write the virtio-net header for the Ethernet frame `frame` into `hdr`: for a TCP segment,
/// ask the kernel to complete its checksum (we store the pseudo-header sum in the checksum field,
/// as `NEEDS_CSUM` requires) and, with `gso_size`, to cut it into segments of that payload size.
/// Anything else goes as is (its checksums are complete).
pub fn vnet_header(hdr: &mut [u8; VNET_HDR], frame: &mut [u8], gso_size: Option<u16>) {
    let len = frame.len();
    vnet_header_for(hdr, frame, len, gso_size);
}

/// [`vnet_header`] for a frame of `len` bytes of which `frame` holds the first ones, at least
/// its Ethernet, IP and TCP headers (a frame sent in two parts, [`Tap::send_parts`]).
pub fn vnet_header_for(
    hdr: &mut [u8; VNET_HDR],
    frame: &mut [u8],
    len: usize,
    gso_size: Option<u16>,
) {
    *hdr = [0; VNET_HDR];
    let Some((src, start)) = super::tcp_segment(frame) else {
        return;
    };
    let v6 = src.len() == 16;
    if frame.len() < start + 20 || len < frame.len() {
        return;
    }
    let Some(&data_off) = frame.get(start + 12) else {
        return;
    };
    let tcp_hdr = usize::from(data_off >> 4) * 4;
    let tcp_len = len - start;
    if tcp_hdr < 20 || tcp_len < tcp_hdr || frame.len() < start + tcp_hdr {
        return;
    }
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for pair in b.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = u32::from(*pair.get(1).unwrap_or(&0));
            sum += hi | lo;
        }
    };
    if v6 {
        add(&frame[14 + 8..14 + 40]);
        add(&(tcp_len as u32).to_be_bytes());
    } else {
        add(&frame[14 + 12..14 + 20]);
        add(&(tcp_len as u16).to_be_bytes());
    }
    add(&[0, 6]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[start + 16..start + 18].copy_from_slice(&(sum as u16).to_be_bytes());
    hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    hdr[6..8].copy_from_slice(&(start as u16).to_le_bytes());
    hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
    match gso_size {
        Some(mss) if tcp_len - tcp_hdr > usize::from(mss) => {
            hdr[1] = if v6 {
                VIRTIO_NET_HDR_GSO_TCPV6
            } else {
                VIRTIO_NET_HDR_GSO_TCPV4
            };
            hdr[2..4].copy_from_slice(&((start + tcp_hdr) as u16).to_le_bytes());
            hdr[4..6].copy_from_slice(&mss.to_le_bytes());
        }
        _ => hdr[1] = VIRTIO_NET_HDR_GSO_NONE,
    }
}

/// Finish what a received frame's virtio-net header left to do, in place: when the kernel set
/// `NEEDS_CSUM`, the checksum at `csum_start + csum_offset` holds only the pseudo-header sum and
/// the RFC 1071 sum from `csum_start` to the end of the frame goes there. A super-segment
/// (`gso_type` TCPv4/v6) needs nothing else: its IP length fields already cover the whole frame
/// and smoltcp takes a TCP segment of any size that fits the window.
///
/// Returns `false` for a header that does not fit the frame (the frame is then dropped).
pub fn complete_checksum(hdr: &[u8; VNET_HDR], frame: &mut [u8]) -> bool {
    match partial_checksum(hdr, frame.len()) {
        Ok(None) => true,
        Ok(Some((start, field))) => {
            let sum = !smoltcp::wire::checksum::data(&frame[start..]);
            frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
            true
        }
        Err(()) => false,
    }
}

/// Whether a received frame's virtio-net header fits a frame of `len` bytes, without touching
/// the frame: what [`complete_checksum`] checks before it sums, for a frame whose partial
/// checksum is left as the kernel handed it (nothing will read it).
pub fn header_fits(hdr: &[u8; VNET_HDR], len: usize) -> bool {
    partial_checksum(hdr, len).is_ok()
}

/// Where a partial checksum's sum starts and where it goes (`None`: the checksum is not
/// partial); `Err` when those do not fit a frame of `len` bytes.
fn partial_checksum(hdr: &[u8; VNET_HDR], len: usize) -> Result<Option<(usize, usize)>, ()> {
    if hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM == 0 {
        return Ok(None);
    }
    let start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
    let field = start + usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
    if start < ETHERNET_HEADER || field + 2 > len {
        return Err(());
    }
    Ok(Some((start, field)))
}

/// Whether a received frame's TCP checksum needs no verification: the kernel either left it
/// partial (its own packet, never on a wire) or verified it already
/// (`DATA_VALID`). Any other frame (injected, forwarded without a verified checksum) goes
/// through [`tcp_checksum_ok`].
pub fn checksum_trusted(hdr: &[u8; VNET_HDR]) -> bool {
    hdr[0] & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID) != 0
}

/// Whether the TCP checksum of an Ethernet frame (IPv4, or IPv6 without extension headers)
/// verifies, over the segment the IP header's length gives (Ethernet padding excluded). Frames
/// that are not TCP, or whose lengths do not fit, are `true`: smoltcp parses them and refuses
/// what is malformed.
pub fn tcp_checksum_ok(frame: &[u8]) -> bool {
    use smoltcp::wire::{checksum, IpProtocol, Ipv4Address, Ipv6Address};
    let Some((_, start)) = super::tcp_segment(frame) else {
        return true;
    };
    if frame.len() < start {
        return true;
    }
    let ip = ETHERNET_HEADER;
    let (end, pseudo) = if frame[12..14] == [0x08, 0x00] {
        let total = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
        let end = ip + total;
        if end > frame.len() || end < start {
            return true;
        }
        let src = Ipv4Address::from_octets(frame[ip + 12..ip + 16].try_into().expect("4 bytes"));
        let dst = Ipv4Address::from_octets(frame[ip + 16..ip + 20].try_into().expect("4 bytes"));
        let len = (end - start) as u32;
        (
            end,
            checksum::pseudo_header_v4(&src, &dst, IpProtocol::Tcp, len),
        )
    } else {
        let payload = usize::from(u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]));
        let end = start + payload;
        if end > frame.len() {
            return true;
        }
        let src = Ipv6Address::from_octets(frame[ip + 8..ip + 24].try_into().expect("16 bytes"));
        let dst = Ipv6Address::from_octets(frame[ip + 24..ip + 40].try_into().expect("16 bytes"));
        let len = payload as u32;
        (
            end,
            checksum::pseudo_header_v6(&src, &dst, IpProtocol::Tcp, len),
        )
    };
    checksum::combine(&[pseudo, checksum::data(&frame[start..end])]) == 0xffff
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// `e` from attaching `name`, with the name.
fn attach_error(name: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot attach to TAP {name:?}: {e}"))
}

/// Whether `e` is the kernel refusing an attach because the TAP was created with the other
/// queue mode (`IFF_MULTI_QUEUE` asked of a single-queue TAP, or not asked of a multi-queue one).
fn is_queue_mismatch(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// Attach one queue of `name` as a TAP without packet info (`multi`: with `IFF_MULTI_QUEUE`).
/// With the virtio-net header, set its size and the offloads we accept towards us: partial
/// checksums, and with `segmentation` also TCP super-segments. Without it, turn the offloads
/// off: a persistent TAP keeps those an earlier attach (with the header) asked for, and the
/// kernel would go on handing us super-segments and partial checksums that a frame without the
/// header cannot describe (smoltcp would drop them all).
fn attach(name: &str, vnet: bool, segmentation: bool, multi: bool) -> io::Result<File> {
    // SAFETY: plain open(2) of a path literal; the fd is owned by the File below.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open /dev/net/tun: {e}"),
        ));
    }
    // SAFETY: fd is a fresh descriptor we own; File closes it on every path from here.
    let file = unsafe { File::from_raw_fd(fd) };
    let mut req = ifreq_for(name);
    let mut flags = IFF_TAP | IFF_NO_PI;
    if vnet {
        flags |= IFF_VNET_HDR;
    }
    if multi {
        flags |= IFF_MULTI_QUEUE;
    }
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: TUNSETIFF reads the ifreq we own.
    if unsafe { libc::ioctl(fd, TUNSETIFF, &req) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            // Kept as is: the caller tells a queue-mode mismatch by it.
            return Err(e);
        }
        return Err(io::Error::new(
            e.kind(),
            format!("cannot attach to TAP {name:?}: {e}"),
        ));
    }
    if !vnet {
        // SAFETY: TUNSETOFFLOAD takes its argument by value, on the fd the File owns.
        if unsafe { libc::ioctl(fd, TUNSETOFFLOAD, 0 as libc::c_ulong) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot turn off the offloads of TAP {name:?}: {e}"),
            ));
        }
        return Ok(file);
    }
    let size: libc::c_int = VNET_HDR as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int we own.
    if unsafe { libc::ioctl(fd, TUNSETVNETHDRSZ, &size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // Partial checksums (and TCP super-segments) towards us (see the module doc).
    let flags = if segmentation {
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
    } else {
        TUN_F_CSUM
    };
    // SAFETY: TUNSETOFFLOAD takes its argument by value.
    if unsafe { libc::ioctl(fd, TUNSETOFFLOAD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

fn with_ioctl_socket<T>(f: impl FnOnce(RawFd) -> io::Result<T>) -> io::Result<T> {
    // SAFETY: plain socket(2) call; the fd is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let r = f(fd);
    // SAFETY: fd is a socket we own and no longer use.
    unsafe { libc::close(fd) };
    r
}

fn get_mtu(name: &str) -> io::Result<usize> {
    with_ioctl_socket(|fd| {
        let mut req = ifreq_for(name);
        // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_mtu of the ifreq we own.
        let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: after SIOCGIFMTU succeeds the union holds the MTU.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        usize::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
    })
}

/// The interface's `txqueuelen`.
pub fn get_queue_len(name: &str) -> io::Result<usize> {
    with_ioctl_socket(|fd| {
        let mut req = ifreq_for(name);
        // SAFETY: SIOCGIFTXQLEN reads ifr_name and writes ifr_qlen, an int at the same place as
        // ifr_mtu in the union, of the ifreq we own.
        if unsafe { libc::ioctl(fd, libc::SIOCGIFTXQLEN, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote the int member.
        Ok(unsafe { req.ifr_ifru.ifru_mtu }.max(0) as usize)
    })
}

fn set_queue_len(name: &str, len: usize) -> io::Result<()> {
    with_ioctl_socket(|fd| {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_mtu = len as libc::c_int;
        // SAFETY: SIOCSIFTXQLEN reads ifr_name and ifr_qlen (the int member) of our ifreq.
        if unsafe { libc::ioctl(fd, libc::SIOCSIFTXQLEN, &req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot set the queue length of {name} to {len}: {e}"),
            ));
        }
        Ok(())
    })
}

fn set_mtu(name: &str, mtu: usize) -> io::Result<()> {
    with_ioctl_socket(|fd| {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        // SAFETY: SIOCSIFMTU reads ifr_name and ifr_mtu of the ifreq we own.
        let rc = unsafe { libc::ioctl(fd, libc::SIOCSIFMTU, &req) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot set MTU {mtu} on {name}: {e}"),
            ));
        }
        Ok(())
    })
}

#[cfg(test)]
pub(crate) mod tests;
