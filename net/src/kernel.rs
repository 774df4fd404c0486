//! The kernel-socket twin of [`Stack`](crate::Stack): the same [`Transport`] contract on the
//! host's TCP stack through mio, so paf's HTTP and TLS code can be measured on both stacks.
//!
//! The twin owns an inner mio `Poll` for its sockets; [`Transport::register`] registers that poll's
//! fd with the loop's poll, and [`Transport::poll`] drains it without blocking. A graceful close
//! shuts down the write side and keeps reading (and discarding) until the peer closes or
//! [`LINGER`] passes, so the kernel never turns unread bytes into a reset
//! that would destroy a response still in flight.
//!
//! With [`KernelStack::set_reuse_port`], listeners are opened with `SO_REUSEPORT`: several twins
//! (one per worker thread) then listen on the same port, and the kernel spreads incoming
//! connections over them by their flow hash.
//!
//! Names are resolved by asking DNS servers over kernel UDP sockets (see `dns/kernel.rs`): the
//! servers given to [`KernelStack::set_dns_servers`], else those of `/etc/resolv.conf`. The host's
//! other name sources (`/etc/hosts`, NSS) are not used, so both stacks resolve alike.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::dns::kernel::{KernelResolver, DNS_TOKENS};
use crate::dns::{DnsError, QueryId, RecordType, Resolution};
use crate::stack::LINGER;
use crate::transport::{
    ConnId, ConnectError, Event, ListenError, ListenerId, Readiness, RecvError, SendError,
    Transport,
};

struct Conn {
    stream: TcpStream,
    generation: u32,
    readable: bool,
    writable: bool,
    connected: bool,
    eof: bool,
    reset: bool,
    /// Released by the layer above: draining until EOF or the deadline.
    closing: Option<Instant>,
}

/// A [`Transport`] on kernel sockets.
pub struct KernelStack {
    poll: Poll,
    events: Events,
    bind: IpAddr,
    reuse_port: bool,
    listeners: Slab<TcpListener>,
    conns: Slab<Conn>,
    generation: u32,
    queue: VecDeque<Event>,
    closing: usize,
    now: Instant,
    dns: KernelResolver,
}

impl std::fmt::Debug for KernelStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelStack")
            .field("bind", &self.bind)
            .field("reuse_port", &self.reuse_port)
            .field("listeners", &self.listeners.len())
            .field("conns", &self.conns.len())
            .finish()
    }
}

fn conn_token(key: usize) -> Token {
    Token(key << 1)
}

fn listener_token(key: usize) -> Token {
    Token((key << 1) | 1)
}

fn os(e: &io::Error) -> io::ErrorKind {
    e.kind()
}

impl KernelStack {
    /// A twin whose listeners bind `bind` (`::` listens on IPv4 and IPv6).
    ///
    /// # Errors
    /// The inner poll cannot be created.
    pub fn new(bind: IpAddr, now: Instant) -> io::Result<KernelStack> {
        Ok(KernelStack {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            bind,
            reuse_port: false,
            listeners: Slab::new(),
            conns: Slab::new(),
            generation: 0,
            queue: VecDeque::new(),
            closing: 0,
            now,
            dns: KernelResolver::new(dns_seed()),
        })
    }

    /// A twin listening on every address of the host, IPv4 and IPv6.
    ///
    /// # Errors
    /// The inner poll cannot be created.
    pub fn any(now: Instant) -> io::Result<KernelStack> {
        KernelStack::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), now)
    }

    /// The port a listener is bound to (useful with port 0 in tests is not allowed; this reports
    /// the configured one).
    pub fn local_addr(&self, listener: ListenerId) -> Option<SocketAddr> {
        self.listeners.get(listener.0 as usize)?.local_addr().ok()
    }

    /// Open listeners from now on with `SO_REUSEPORT` (and `SO_REUSEADDR`), so that other
    /// sockets with it, such as other workers' twins of this process, listen on the same port;
    /// the kernel spreads connections over them. Off by default: a port another socket
    /// listens on is then [`ListenError::InUse`]. With it on, that error only comes from a
    /// socket without `SO_REUSEPORT` (or of another user).
    pub fn set_reuse_port(&mut self, on: bool) {
        self.reuse_port = on;
    }

    /// The DNS servers to ask (instead of those of `/etc/resolv.conf`).
    pub fn set_dns_servers(&mut self, servers: Vec<IpAddr>) {
        self.dns.set_servers(servers);
    }

    fn id(&self, key: usize) -> ConnId {
        ConnId((u64::from(self.conns[key].generation) << 32) | key as u64)
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        let key = (id.0 & 0xffff_ffff) as usize;
        self.conns
            .get(key)
            .filter(|c| u64::from(c.generation) == id.0 >> 32 && c.closing.is_none())
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let key = (id.0 & 0xffff_ffff) as usize;
        self.conns
            .get_mut(key)
            .filter(|c| u64::from(c.generation) == id.0 >> 32 && c.closing.is_none())
    }

    fn insert(&mut self, mut stream: TcpStream, connected: bool) -> io::Result<usize> {
        self.generation = self.generation.wrapping_add(1);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            conn_token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let _ = stream.set_nodelay(true);
        entry.insert(Conn {
            stream,
            generation: self.generation,
            readable: true,
            writable: connected,
            connected,
            eof: false,
            reset: false,
            closing: None,
        });
        Ok(key)
    }

    fn remove(&mut self, key: usize) {
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
    }

    fn accept_all(&mut self, lkey: usize) {
        loop {
            let Some(l) = self.listeners.get(lkey) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => {
                    let local = stream.local_addr().unwrap_or(peer);
                    match self.insert(stream, true) {
                        Ok(key) => {
                            let conn = self.id(key);
                            self.queue.push_back(Event::Accepted {
                                listener: ListenerId(lkey as u32),
                                conn,
                                peer: unmap(peer),
                                local: unmap(local),
                            });
                            self.queue.push_back(Event::Ready(conn));
                        }
                        Err(e) => log::warn!("kernel: cannot register accepted socket: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log, stop for this pass; the next event retries.
                    log::warn!("kernel: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Read and discard from a closing connection until EOF; drop it then.
    fn drain_closing(&mut self, key: usize) {
        let mut sink = [0u8; 4096];
        let done = loop {
            let c = &mut self.conns[key];
            match c.stream.read(&mut sink) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
        };
        let expired = self.conns[key].closing.is_some_and(|d| self.now >= d);
        if done || expired {
            self.closing -= 1;
            self.remove(key);
        }
    }
}

/// A seed for DNS transaction ids: not predictable from outside across runs.
fn dns_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Present IPv4-mapped IPv6 peers (from a dual-stack listener) as plain IPv4.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// What `listen(2)` is given: as mio's [`TcpListener::bind`] (the kernel caps it at
/// `net.core.somaxconn`).
const KERNEL_BACKLOG: libc::c_int = 1024;

/// A non-blocking listening socket on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`, made as
/// mio's [`TcpListener::bind`] makes one (an IPv6 socket keeps the system's `IPV6_V6ONLY`, so
/// `::` takes IPv4 too), plus `SO_REUSEPORT` before `bind(2)`.
fn reuse_port_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a correctly sized int.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: both structs are plain C data, fully initialised (zeroed, then set); bind(2)
    // reads `len` bytes of the one passed.
    let rc = unsafe {
        match addr {
            SocketAddr::V4(a) => {
                let mut sin: libc::sockaddr_in = std::mem::zeroed();
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                libc::bind(
                    socket.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let mut sin6: libc::sockaddr_in6 = std::mem::zeroed();
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                libc::bind(
                    socket.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen(2) on a bound socket we own.
    if unsafe { libc::listen(socket.as_raw_fd(), KERNEL_BACKLOG) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(std::net::TcpListener::from(socket))
}

fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket fd we own with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn unsent_bytes(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int for a TCP socket fd we own.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

impl Transport for KernelStack {
    fn listen(&mut self, port: u16, _backlog: usize) -> Result<ListenerId, ListenError> {
        if port == 0 {
            return Err(ListenError::BadPort);
        }
        let addr = SocketAddr::new(self.bind, port);
        let bound = if self.reuse_port {
            reuse_port_listener(addr).map(TcpListener::from_std)
        } else {
            TcpListener::bind(addr)
        };
        let mut l = bound.map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => ListenError::InUse,
            k => ListenError::Os(k),
        })?;
        let entry = self.listeners.vacant_entry();
        self.poll
            .registry()
            .register(&mut l, listener_token(entry.key()), Interest::READABLE)
            .map_err(|e| ListenError::Os(os(&e)))?;
        let key = entry.key();
        entry.insert(l);
        Ok(ListenerId(key as u32))
    }

    fn unlisten(&mut self, listener: ListenerId) {
        if let Some(mut l) = self.listeners.try_remove(listener.0 as usize) {
            let _ = self.poll.registry().deregister(&mut l);
        }
    }

    fn connect(&mut self, remote: SocketAddr) -> Result<ConnId, ConnectError> {
        if remote.ip().is_unspecified() || remote.port() == 0 {
            return Err(ConnectError::BadAddress);
        }
        let stream = TcpStream::connect(remote).map_err(|e| ConnectError::Os(os(&e)))?;
        let key = self
            .insert(stream, false)
            .map_err(|e| ConnectError::Os(os(&e)))?;
        Ok(self.id(key))
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, RecvError> {
        let c = self.conn_mut(conn).ok_or(RecvError::Invalid)?;
        if c.reset {
            return Err(RecvError::Reset);
        }
        if c.eof {
            return Err(RecvError::Finished);
        }
        // Not readable since the last `WouldBlock`: the socket is known empty and the next edge
        // of readiness says when that changes, so no system call is spent on it.
        if !c.connected || buf.is_empty() || !c.readable {
            return Ok(0);
        }
        loop {
            match c.stream.read(buf) {
                Ok(0) => {
                    c.eof = true;
                    return Err(RecvError::Finished);
                }
                // A short read is not the end: a FIN queued behind the bytes raises no new
                // edge, so only `WouldBlock` clears `readable`.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.reset = true;
                    return Err(RecvError::Reset);
                }
            }
        }
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, SendError> {
        let c = self.conn_mut(conn).ok_or(SendError::Invalid)?;
        if c.reset {
            return Err(SendError::Closed);
        }
        if !c.connected || data.is_empty() || !c.writable {
            return Ok(0);
        }
        loop {
            match c.stream.write(data) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.writable = false;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.reset = true;
                    return Err(SendError::Closed);
                }
            }
        }
    }

    fn send_queue(&self, conn: ConnId) -> usize {
        self.conn(conn).map_or(0, |c| unsent_bytes(&c.stream))
    }

    fn readiness(&self, conn: ConnId) -> Readiness {
        match self.conn(conn) {
            None => Readiness {
                closed: true,
                ..Readiness::default()
            },
            Some(c) => Readiness {
                readable: c.readable && c.connected,
                writable: c.writable && c.connected && !c.reset,
                established: c.connected,
                peer_closed: c.eof,
                reset: c.reset,
                closed: c.reset,
            },
        }
    }

    fn endpoints(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        let c = self.conn(conn)?;
        Some((
            unmap(c.stream.peer_addr().ok()?),
            unmap(c.stream.local_addr().ok()?),
        ))
    }

    fn shutdown_write(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            let _ = c.stream.shutdown(Shutdown::Write);
        }
    }

    fn close(&mut self, conn: ConnId) {
        let deadline = self.now + LINGER;
        let key = (conn.0 & 0xffff_ffff) as usize;
        let Some(c) = self.conn_mut(conn) else { return };
        if c.reset || c.eof {
            self.remove(key);
            return;
        }
        let _ = c.stream.shutdown(Shutdown::Write);
        c.closing = Some(deadline);
        self.closing += 1;
        self.drain_closing(key);
    }

    fn abort(&mut self, conn: ConnId) {
        let key = (conn.0 & 0xffff_ffff) as usize;
        if let Some(c) = self.conn(conn) {
            set_linger_zero(&c.stream);
            self.remove(key);
        }
    }

    fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        registry.register(
            &mut mio::unix::SourceFd(&self.poll.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    fn poll(&mut self, now: Instant) {
        self.now = now;
        loop {
            if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("kernel: poll failed: {e}");
                }
                return;
            }
            if self.events.is_empty() {
                break;
            }
            let ready: Vec<(Token, bool, bool, bool)> = self
                .events
                .iter()
                .map(|e| {
                    (
                        e.token(),
                        e.is_readable() || e.is_read_closed(),
                        e.is_writable(),
                        e.is_error(),
                    )
                })
                .collect();
            for (token, readable, writable, error) in ready {
                if token.0 >= DNS_TOKENS {
                    self.dns
                        .readable(token, self.poll.registry(), now, &mut self.queue);
                    continue;
                }
                let key = token.0 >> 1;
                if token.0 & 1 == 1 {
                    self.accept_all(key);
                    continue;
                }
                let Some(c) = self.conns.get_mut(key) else {
                    continue;
                };
                if c.closing.is_some() {
                    self.drain_closing(key);
                    continue;
                }
                c.readable |= readable;
                c.writable |= writable;
                if !c.connected && (writable || error) {
                    match c.stream.take_error() {
                        Ok(None) if c.stream.peer_addr().is_ok() => c.connected = true,
                        _ => c.reset = true,
                    }
                }
                if error && c.connected {
                    if let Ok(Some(_)) = c.stream.take_error() {
                        c.reset = true;
                    }
                }
                let id = self.id(key);
                self.queue.push_back(Event::Ready(id));
            }
            if self.events.iter().count() < self.events.capacity() {
                break;
            }
        }
        self.dns.poll(self.poll.registry(), now, &mut self.queue);
        if self.closing > 0 {
            let expired: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.closing.is_some_and(|d| now >= d))
                .map(|(k, _)| k)
                .collect();
            for key in expired {
                self.drain_closing(key);
            }
        }
    }

    fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        let dns = self
            .dns
            .next_deadline()
            .map(|at| at.saturating_duration_since(now));
        let own = if !self.queue.is_empty() {
            Some(Duration::ZERO)
        } else if self.closing > 0 {
            Some(Duration::from_secs(1))
        } else {
            None
        };
        match (own, dns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn resolve(&mut self, name: &str, rtype: RecordType) -> Result<QueryId, DnsError> {
        self.dns
            .start(name, rtype, self.poll.registry(), self.now, &mut self.queue)
    }

    fn poll_resolution(&mut self, query: QueryId) -> Option<Resolution> {
        self.dns.take(query)
    }

    fn cancel_resolution(&mut self, query: QueryId) {
        self.dns.cancel(query, self.poll.registry());
    }

    fn socket_count(&self) -> usize {
        self.conns.len() + self.listeners.len() + self.dns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port free on 127.0.0.1 a moment ago.
    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn twin(reuse_port: bool) -> KernelStack {
        let mut k = KernelStack::new("127.0.0.1".parse().unwrap(), Instant::now()).unwrap();
        k.set_reuse_port(reuse_port);
        k
    }

    #[test]
    fn twins_with_reuse_port_listen_on_one_port_and_both_accept() {
        let port = free_port();
        let (mut a, mut b) = (twin(true), twin(true));
        let la = a.listen(port, 16).unwrap();
        let lb = b.listen(port, 16).unwrap();
        assert_eq!(a.local_addr(la).unwrap().port(), port);
        assert_eq!(b.local_addr(lb).unwrap().port(), port);
        // The kernel spreads connections by their 4-tuple: among 64, each twin gets some.
        let clients: Vec<_> = (0..64)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut got_a, mut got_b) = (0, 0);
        while got_a + got_b < clients.len() && Instant::now() < deadline {
            for (k, got) in [(&mut a, &mut got_a), (&mut b, &mut got_b)] {
                k.poll(Instant::now());
                while let Some(e) = k.poll_event() {
                    *got += usize::from(matches!(e, Event::Accepted { .. }));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got_a + got_b, clients.len());
        assert!(got_a > 0 && got_b > 0, "{got_a} and {got_b}");
    }

    #[test]
    fn without_reuse_port_a_taken_port_is_in_use() {
        let port = free_port();
        let (mut a, mut b) = (twin(false), twin(false));
        a.listen(port, 16).unwrap();
        assert_eq!(b.listen(port, 16), Err(ListenError::InUse));
        // A reuse-port socket cannot join a port held by one without it.
        let mut c = twin(true);
        assert_eq!(c.listen(port, 16), Err(ListenError::InUse));
    }

    #[test]
    fn a_reuse_port_listener_takes_ipv6_and_ipv4_on_the_unspecified_address() {
        let dual =
            std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "0");
        if !dual {
            return; // `::` is IPv6 only on this host, with or without SO_REUSEPORT
        }
        let port = free_port();
        let mut k = KernelStack::any(Instant::now()).unwrap();
        k.set_reuse_port(true);
        let Ok(l) = k.listen(port, 16) else {
            return; // no IPv6 on this host
        };
        assert!(k.local_addr(l).unwrap().is_ipv6());
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            k.poll(Instant::now());
            if let Some(Event::Accepted { peer, .. }) = k.poll_event() {
                assert!(peer.is_ipv4(), "{peer}");
                break;
            }
            assert!(Instant::now() < deadline, "no connection accepted");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
