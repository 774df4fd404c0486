//! A Linux TAP device opened by name: Ethernet frames without packet-info, non-blocking, its fd
//! ready for mio.
//!
//! The TAP must exist (e.g. `ip tuntap add dev paf0 mode tap`) in the network namespace of the
//! process, or the process must be allowed to create it. The MTU is read from the kernel
//! interface; [`Tap::open`] can set it first (jumbo MTUs up to [`MAX_MTU`](super::MAX_MTU)).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tun_tap::{Iface, Mode};

/// An open TAP device.
pub struct Tap {
    iface: Iface,
    mtu: usize,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.iface.name())
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl Tap {
    /// Attach to (or create) the TAP `name`, in non-blocking mode. With `mtu`, set the interface
    /// MTU first; otherwise use the one the kernel has.
    ///
    /// # Errors
    /// The device cannot be opened (no `/dev/net/tun`, no permission, name in use by a TUN), or
    /// the MTU cannot be read or set (out of range).
    pub fn open(name: &str, mtu: Option<usize>) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TAP name {name:?} must be 1 to 15 bytes"),
            ));
        }
        let iface = Iface::without_packet_info(name, Mode::Tap)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open TAP {name:?}: {e}")))?;
        iface.set_non_blocking()?;
        if let Some(mtu) = mtu {
            if !(576..=super::MAX_MTU).contains(&mtu) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("MTU {mtu} out of range 576..={}", super::MAX_MTU),
                ));
            }
            set_mtu(name, mtu)?;
        }
        let mtu = get_mtu(name)?;
        Ok(Tap { iface, mtu })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.iface.name()
    }

    /// The IP MTU of the link, as the kernel reported it when opened.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Read one frame. `Ok(None)` when nothing is queued.
    ///
    /// # Errors
    /// A read error other than "would block" / "interrupted".
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.iface.recv(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Write one frame. `Ok(false)` when the kernel queue is full and the frame was dropped (TCP
    /// retransmits; blocking the loop would be worse).
    ///
    /// # Errors
    /// A write error other than "would block" / "no buffer space".
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        loop {
            match self.iface.send(frame) {
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

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.iface.as_raw_fd()
    }
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
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

fn set_mtu(name: &str, mtu: usize) -> io::Result<()> {
    with_ioctl_socket(|fd| {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        // SAFETY: SIOCSIFMTU reads ifr_name and ifr_mtu of the ifreq we own.
        let rc = unsafe { libc::ioctl(fd, libc::SIOCSIFMTU, &req) };
        if rc < 0 {
            return Err(io::Error::new(
                io::Error::last_os_error().kind(),
                format!(
                    "cannot set MTU {mtu} on {name}: {}",
                    io::Error::last_os_error()
                ),
            ));
        }
        Ok(())
    })
}
