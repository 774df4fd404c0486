//! The userspace stack: a smoltcp `Interface` and `SocketSet` over a [`Device`], with listener
//! pools, a connection table and DHCPv4, implementing [`Transport`].
//!
//! Contract (the `Transport` side lives in `transport.rs`):
//! - [`Stack::poll`] drains the device (bounded per call so one busy peer cannot starve the loop;
//!   [`Stack::poll_delay`] is then zero), runs timers, transmits, and turns socket changes into
//!   [`Event`]s;
//! - smoltcp has no accept backlog: a SYN that finds no listening socket is reset. The stack
//!   peeks at every frame before smoltcp sees it, and a SYN for a listened port gets a listening
//!   socket made for it in its shard right then (from recycled sockets when there are some), so
//!   a burst of connections is accepted, not reset, and idle shards hold no listening sockets.
//!   A listener holds at most `backlog` half-open connections (SYN received, handshake not
//!   finished); a SYN beyond that is dropped unanswered and the client retries, as with a full
//!   kernel SYN queue;
//! - a released connection whose TCP is in TIME-WAIT is kept only [`TIME_WAIT`] (1 s), then
//!   its socket is recycled for the next connection (as kernels recycle TIME-WAIT); one that has
//!   not finished within [`LINGER`] is aborted. Sockets leave the set only after an egress pass,
//!   so a final ACK or an abort's RST always goes out;
//! - DNS queries ([`Transport::resolve`]) run on smoltcp's DNS socket inside the same poll (see
//!   `dns.rs`), with the configured servers and those learned by DHCP.

mod dhcp;
mod dns;
pub mod mesh;
mod pool;
mod shard;
mod table;
mod transport;
mod wakeups;

#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use slab::Slab;
use smoltcp::iface::{
    Config as IfaceConfig, Interface, PollIngressSingleResult, SocketHandle, SocketSet,
};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::clock::{duration_from_smol, to_smol};
use crate::config::{Config, ConfigError, Ipv4Setting, Ipv6Setting};
use crate::device::{Device, Link};
use crate::dns::{DnsError, QueryId, RecordType, Resolution};
use crate::transport::{
    ConnId, ConnectError, Event, ListenError, ListenerId, Readiness, RecvError, SendError,
    Transport,
};
use table::{Fingerprint, Phase, Table};

/// Frames read from the device per [`Stack::poll`] before yielding to the layer above.
pub const RX_BUDGET: usize = 256;

/// How long a released connection may take to finish its close before it is aborted.
pub const LINGER: Duration = Duration::from_secs(30);

/// Bytes a released connection may receive (and drop) after its close before it is reset.
pub const DRAIN_BYTES: usize = 64 * 1024;

/// How long a released connection stays in TIME-WAIT (RFC 9293 says 2 MSL, 10 s in smoltcp):
/// long enough to answer the peer's FIN again if our last ACK was lost, short enough that churn
/// does not pile up sockets. A peer resends its FIN after its RTO (200 ms at least on Linux and
/// paf, then 400 ms later): 1 s covers two such resends. (It was 100 ms: a lost final ACK then
/// drew a reset, and the peer never learned its last bytes had arrived; `net/tests/wire_bidir.rs`.)
pub const TIME_WAIT: Duration = Duration::from_secs(1);

/// How long a half-open connection (SYN received, our SYN-ACK unanswered) may hold its place
/// in the listener's `backlog`: long enough for four SYN-ACK retransmissions (1 + 2 + 4 + 8 s),
/// short enough that spoofed SYNs cannot shut a listener for smoltcp's 300 s connection timeout.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(15);

const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;

#[derive(Debug)]
struct Listener {
    port: u16,
    /// Most half-open connections at once.
    backlog: usize,
    /// Connections taken from this listener's sockets whose handshake has not finished.
    half_open: usize,
    /// Listening sockets, by shard: made when a SYN arrives for the shard, usually 0 or 1.
    pools: Vec<Vec<SocketHandle>>,
}

/// Counters of the stack, for metrics and leak checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Connections handed out by listeners.
    pub accepted: u64,
    /// Outgoing connections started.
    pub connected: u64,
    /// Half-open connections that died before the handshake completed.
    pub embryonic_failed: u64,
    /// Released connections aborted because they did not finish closing within [`LINGER`].
    pub linger_aborts: u64,
    /// Released connections reset because the peer sent more than [`DRAIN_BYTES`] after the
    /// close (nobody would read it; Linux resets at the first byte).
    pub data_after_close_resets: u64,
    /// Sockets (with their buffers) reused from finished connections instead of allocated.
    pub sockets_reused: u64,
    /// Finished sockets kept for reuse now.
    pub spare_sockets: usize,
    /// Receive and transmit buffer pairs taken from sockets in TIME-WAIT, kept for reuse now.
    pub parked_buffers: usize,
    /// SYNs dropped unanswered because their listener had `backlog` half-open connections.
    pub syn_dropped: u64,
    /// Listening sockets in place now, over all listeners and shards.
    pub listening_sockets: usize,
}

/// A userspace TCP/IP stack. See the module docs.
pub struct Stack {
    iface: Interface,
    /// Socket sets; shard 0 also holds the UDP sockets (DNS, DHCP). See [`shard`].
    shards: Vec<SocketSet<'static>>,
    /// Connections by shard.
    members: Vec<Vec<ConnId>>,
    /// When each shard next has timed work: smoltcp's `poll_at` or a `deadline`.
    wake: wakeups::Wakeups,
    /// Earliest TIME-WAIT end or linger deadline among each shard's released connections.
    deadline: Vec<Option<Instant>>,
    /// Shards found due in this pass (scratch).
    due: Vec<usize>,
    /// Shards the layer above touched since the last pass (sent, received, closed).
    pending: Vec<usize>,
    /// Shards worked on in the current pass.
    active: Vec<usize>,
    in_pass: Vec<bool>,
    /// Shards in this pass because a time of theirs came (smoltcp's timers, a deadline): the
    /// only ones whose sockets egress can change (a retransmission or keep-alive giving up, a
    /// TIME-WAIT ending), so the only ones looked at again after it, with those the first look
    /// left something for (an RST to send, a deadline reached).
    timed: Vec<bool>,
    device: Device,
    config: Config,
    conns: Table,
    listeners: Slab<Listener>,
    events: VecDeque<Event>,
    dhcp: Option<SocketHandle>,
    net: dhcp::Learned,
    resolver: dns::Resolver,
    scratch: Vec<ConnId>,
    used_ports: HashSet<u16>,
    next_port: u16,
    more_rx: bool,
    now: Instant,
    stats: StackStats,
    spare: pool::Pool,
    /// Read end of the wire's wake-up pipe (a second mio `Waker` on the loop's poll is not
    /// allowed: the loop has its own).
    wake_rx: Option<mio::unix::pipe::Receiver>,
    /// This stack's place among the workers sharing its TAP, once it [joined](Stack::join).
    peer: Option<mesh::Peer>,
    /// The local ports of outgoing connections: the ephemeral range, or this worker's share.
    ports: std::ops::RangeInclusive<u16>,
    /// Frames handed over by other workers, being processed (reused).
    inbox: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("device", &self.device)
            .field("addrs", &self.iface.ip_addrs())
            .field("conns", &self.conns.len())
            .finish()
    }
}

fn endpoint(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(e.addr.into(), e.port)
}

impl Stack {
    /// Build a stack on `device` with `config`, at time `now`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the bad field.
    pub fn new(config: Config, mut device: Device, now: Instant) -> Result<Stack, ConfigError> {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(|| {
            // The one read of the system: a fixed ISN seed across restarts breaks TCP.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ (u64::from(std::process::id()) << 32)
        });
        let mut ic = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        ic.random_seed = seed;
        let mut iface = Interface::new(ic, &mut device, to_smol(now));
        let link_local = link_local_from_mac(config.mac);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(link_local.into(), 64));
            if let Ipv4Setting::Static { addr, prefix, .. } = &config.ipv4 {
                let _ = addrs.push(IpCidr::new((*addr).into(), *prefix));
            }
            if let Ipv6Setting::Static { addr, prefix, .. } = &config.ipv6 {
                let _ = addrs.push(IpCidr::new((*addr).into(), *prefix));
            }
        });
        if let Ipv4Setting::Static {
            gateway: Some(gw), ..
        } = &config.ipv4
        {
            let _ = iface.routes_mut().add_default_ipv4_route(*gw);
        }
        if let Ipv6Setting::Static {
            gateway: Some(gw), ..
        } = &config.ipv6
        {
            let _ = iface.routes_mut().add_default_ipv6_route(*gw);
        }
        let n = config.tcp.shards;
        let mut shards: Vec<SocketSet<'static>> =
            (0..n).map(|_| SocketSet::new(Vec::new())).collect();
        let dhcp = (config.ipv4 == Ipv4Setting::Dhcp).then(|| dhcp::socket(&mut shards[0]));
        let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        let next_port = EPHEMERAL.start() + (seed % span) as u16;
        Ok(Stack {
            iface,
            shards,
            members: vec![Vec::new(); n],
            wake: wakeups::Wakeups::new(n),
            deadline: vec![None; n],
            due: Vec::new(),
            pending: Vec::new(),
            active: Vec::new(),
            in_pass: vec![false; n],
            timed: vec![false; n],
            device,
            net: dhcp::Learned {
                dns_servers: config.dns_servers.clone(),
                gateway4: match &config.ipv4 {
                    Ipv4Setting::Static { gateway, .. } => *gateway,
                    _ => None,
                },
            },
            resolver: dns::Resolver::default(),
            scratch: Vec::new(),
            config,
            conns: Table::default(),
            listeners: Slab::new(),
            events: VecDeque::new(),
            dhcp,
            used_ports: HashSet::new(),
            next_port,
            more_rx: false,
            now,
            stats: StackStats::default(),
            spare: pool::Pool::default(),
            wake_rx: None,
            peer: None,
            ports: EPHEMERAL,
            inbox: Vec::new(),
        })
    }

    /// Make this stack one of the workers sharing a multi-queue TAP, each on its own queue
    /// (see [`mesh`]): neighbour frames it receives are copied to the others, TCP segments and
    /// ICMP errors for another worker's local ports are handed to it, and its own outgoing
    /// connections take their local ports from its share of the ephemeral range. With DHCP,
    /// worker 0 keeps the DHCP client and publishes its lease; any other worker drops its
    /// client, hands DHCP replies to worker 0 and applies the lease it publishes. Call it
    /// before the stack is registered with a loop (and polled).
    pub fn join(&mut self, peer: mesh::Peer) {
        if peer.index() != 0 {
            if let Some(h) = self.dhcp.take() {
                self.shards[0].remove(h);
            }
        }
        self.ports = mesh::ports_of(peer.index(), peer.workers());
        let span = u64::from(self.ports.end() - self.ports.start()) + 1;
        self.next_port = self.ports.start() + (self.next_port as u64 % span) as u16;
        self.peer = Some(peer);
    }

    /// This stack's place among the workers, once it joined them.
    pub fn peer(&self) -> Option<&mesh::Peer> {
        self.peer.as_ref()
    }

    /// The device (counters, capture).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Mutable access to the device (start a capture, change wire faults).
    pub fn device_mut(&mut self) -> &mut Device {
        &mut self.device
    }

    /// The addresses the interface has now (static or from DHCP), link-local included.
    pub fn addresses(&self) -> Vec<IpCidr> {
        self.iface.ip_addrs().to_vec()
    }

    /// The IPv4 address, once configured.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.iface.ipv4_addr()
    }

    /// The default IPv4 gateway (static or from DHCP), if any.
    pub fn ipv4_gateway(&self) -> Option<std::net::Ipv4Addr> {
        self.net.gateway4
    }

    /// DNS servers: configured ones, then those learned by DHCP.
    pub fn dns_servers(&self) -> &[IpAddr] {
        &self.net.dns_servers
    }

    /// The configuration the stack was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> StackStats {
        StackStats {
            sockets_reused: self.spare.reused,
            spare_sockets: self.spare.len(),
            parked_buffers: self.spare.parked(),
            listening_sockets: self
                .listeners
                .iter()
                .map(|(_, l)| l.pools.iter().map(Vec::len).sum::<usize>())
                .sum(),
            ..self.stats
        }
    }

    /// Move the sockets of `shard`'s listener pools that left LISTEN (a SYN reached them) into
    /// the table as half-open connections.
    fn claim_listeners(&mut self, shard: usize) {
        for (lid, l) in self.listeners.iter_mut() {
            let pool = &mut l.pools[shard];
            let mut i = 0;
            while i < pool.len() {
                let h = pool[i];
                if self.shards[shard].get::<tcp::Socket>(h).is_listening() {
                    i += 1;
                    continue;
                }
                pool.swap_remove(i);
                l.half_open += 1;
                let phase = Phase::Embryonic {
                    listener: ListenerId(lid as u32),
                    until: self.now + HALF_OPEN_TIMEOUT,
                };
                let id = self.conns.insert(h, shard, phase, None);
                self.members[shard].push(id);
            }
        }
    }

    /// A SYN for `port` is about to be processed in `shard`: make sure a listener on that port
    /// has a listening socket there. `false` when the listener is full and the SYN must be
    /// dropped unanswered; `true` otherwise (also when nothing listens on `port`: smoltcp then
    /// resets the SYN, as a closed port should).
    fn listen_for_syn(&mut self, shard: usize, port: u16) -> bool {
        let Some((_, l)) = self.listeners.iter_mut().find(|(_, l)| l.port == port) else {
            return true;
        };
        if !l.pools[shard].is_empty() {
            return true;
        }
        if l.half_open >= l.backlog {
            self.stats.syn_dropped += 1;
            return false;
        }
        let mut s = self.spare.take(&self.config.tcp);
        if s.listen(IpListenEndpoint::from(port)).is_err() {
            return true;
        }
        l.pools[shard].push(self.shards[shard].add(s));
        true
    }

    /// A SYN from `from` to `port` is about to be processed in `shard`: a released connection of
    /// the same four-tuple still in TIME-WAIT gives way to it, as on Linux (RFC 1122
    /// §4.2.2.13, RFC 6191). A client that reuses its ports quickly would otherwise see its SYN
    /// answered by the old connection's ACK and wait a second to retry; with a 1 s TIME-WAIT
    /// that was most new connections of a `Connection: close` benchmark.
    fn end_time_wait_for_syn(&mut self, shard: usize, from: IpEndpoint, port: u16) {
        let found = self.members[shard].iter().copied().find(|&id| {
            let Some(e) = self.conns.get(id) else {
                return false;
            };
            if !matches!(e.phase, Phase::TimeWait { .. } | Phase::Released { .. }) {
                return false;
            }
            let s = self.shards[shard].get::<tcp::Socket>(e.handle);
            s.state() == tcp::State::TimeWait
                && s.remote_endpoint() == Some(from)
                && s.local_endpoint().is_some_and(|l| l.port == port)
        });
        if let Some(id) = found {
            self.drop_socket(id);
        }
    }

    /// A half-open connection of `listener` finished its handshake or died.
    fn half_open_done(&mut self, listener: ListenerId) {
        if let Some(l) = self.listeners.get_mut(listener.0 as usize) {
            l.half_open = l.half_open.saturating_sub(1);
        }
    }

    /// Work on `shard` in this pass (or the next one, if a pass is not running).
    fn touch(&mut self, shard: usize) {
        if !self.in_pass[shard] {
            self.in_pass[shard] = true;
            self.active.push(shard);
        }
    }

    /// The layer above changed something in `shard`: look at it in the next pass.
    fn mark(&mut self, shard: usize) {
        if !self.pending.contains(&shard) {
            self.pending.push(shard);
        }
    }

    /// Turn socket changes into events; finish released sockets. After egress, only the shards
    /// egress may have changed (see `timed`).
    fn scan(&mut self, after_egress: bool) {
        let active = std::mem::take(&mut self.active);
        for &k in &active {
            if after_egress && !self.timed[k] && self.deadline[k].is_none_or(|d| d > self.now) {
                continue;
            }
            self.scan_shard(k, after_egress);
        }
        self.active = active;
    }

    fn scan_shard(&mut self, shard: usize, after_egress: bool) {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        ids.extend_from_slice(&self.members[shard]);
        let mut deadline: Option<Instant> = None;
        let mut soonest = |d: Instant| deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
        for &id in &ids {
            let Some(e) = self.conns.get(id) else {
                continue;
            };
            let (handle, phase, last) = (e.handle, e.phase, e.last);
            let s = self.shards[shard].get::<tcp::Socket>(handle);
            let state = s.state();
            match phase {
                Phase::Embryonic { listener, until } => match state {
                    tcp::State::SynReceived if self.now < until => soonest(until),
                    tcp::State::SynReceived => {
                        // Never completed: reset it and free its backlog place.
                        self.stats.embryonic_failed += 1;
                        self.half_open_done(listener);
                        self.shards[shard].get_mut::<tcp::Socket>(handle).abort();
                        soonest(self.now);
                        if let Some(e) = self.conns.get_mut(id) {
                            e.phase = Phase::Released {
                                deadline: self.now + LINGER,
                            };
                        }
                    }
                    tcp::State::Closed | tcp::State::Listen => {
                        self.stats.embryonic_failed += 1;
                        self.half_open_done(listener);
                        self.drop_socket(id);
                    }
                    _ => {
                        let ends = (s.remote_endpoint(), s.local_endpoint());
                        let fp = fingerprint(s);
                        self.half_open_done(listener);
                        let (Some(peer), Some(local)) = ends else {
                            self.drop_socket(id);
                            continue;
                        };
                        self.stats.accepted += 1;
                        if let Some(e) = self.conns.get_mut(id) {
                            e.phase = Phase::Open;
                            e.last = fp;
                        }
                        self.events.push_back(Event::Accepted {
                            listener,
                            conn: id,
                            peer: endpoint(peer),
                            local: endpoint(local),
                        });
                        // Data may have come with the handshake: let the owner look at once.
                        if fp.readable || state != tcp::State::Established {
                            self.events.push_back(Event::Ready(id));
                        }
                    }
                },
                Phase::Open => {
                    let fp = fingerprint(s);
                    if fp != last {
                        if let Some(e) = self.conns.get_mut(id) {
                            e.last = fp;
                        }
                        self.events.push_back(Event::Ready(id));
                    }
                }
                Phase::TimeWait { until } => {
                    if after_egress && (self.now >= until || state == tcp::State::Closed) {
                        self.drop_socket(id);
                    } else {
                        soonest(until);
                    }
                }
                Phase::Released { .. }
                    if s.recv_queue() > 0
                        && !matches!(state, tcp::State::Closed | tcp::State::TimeWait) =>
                {
                    // Data came after the close: nobody will read it. Up to `DRAIN_BYTES` it
                    // is dropped (the window stays open: the peer's FIN gets through, and a
                    // peer still sending a little, a slow client say, reads our last bytes);
                    // past that the connection is reset, as Linux does at once (RFC 1122
                    // §4.2.2.13), so that a peer that keeps sending (a flood cut off with
                    // GOAWAY) cannot hold the socket and its buffers until `LINGER`.
                    let s = self.shards[shard].get_mut::<tcp::Socket>(handle);
                    let mut dropped = 0;
                    while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                        if n == 0 {
                            break;
                        }
                        dropped += n;
                    }
                    let total = self.conns.get(id).map_or(0, |e| e.after_close) + dropped;
                    if total <= DRAIN_BYTES {
                        if let Some(e) = self.conns.get_mut(id) {
                            e.after_close = total;
                        }
                        self.mark(shard);
                        continue;
                    }
                    self.stats.data_after_close_resets += 1;
                    self.shards[shard].get_mut::<tcp::Socket>(handle).abort();
                    soonest(self.now);
                    if let Some(e) = self.conns.get_mut(id) {
                        e.phase = Phase::Released {
                            deadline: self.now + Duration::from_secs(3600),
                        };
                    }
                }
                Phase::Released { deadline } => match state {
                    // An abort's RST goes out on egress: drop the socket only after that.
                    tcp::State::Closed if after_egress => self.drop_socket(id),
                    tcp::State::Closed => soonest(self.now),
                    tcp::State::TimeWait => {
                        soonest(self.now + TIME_WAIT);
                        // Its buffers serve the next connection meanwhile.
                        self.spare
                            .park(self.shards[shard].get_mut::<tcp::Socket>(handle));
                        if let Some(e) = self.conns.get_mut(id) {
                            e.phase = Phase::TimeWait {
                                until: self.now + TIME_WAIT,
                            };
                        }
                    }
                    _ if self.now < deadline => soonest(deadline),
                    _ => {
                        soonest(self.now);
                        self.stats.linger_aborts += 1;
                        self.shards[shard].get_mut::<tcp::Socket>(handle).abort();
                        // Stay until the RST has gone out (next egress), then Closed.
                        if let Some(e) = self.conns.get_mut(id) {
                            e.phase = Phase::Released {
                                deadline: self.now + Duration::from_secs(3600),
                            };
                        }
                    }
                },
            }
        }
        self.deadline[shard] = deadline;
        self.scratch = ids;
    }

    fn drop_socket(&mut self, id: ConnId) {
        if let Some(e) = self.conns.remove(id) {
            if let smoltcp::socket::Socket::Tcp(s) = self.shards[e.shard].remove(e.handle) {
                self.spare.give(s);
            }
            let members = &mut self.members[e.shard];
            if let Some(i) = members.iter().position(|m| *m == id) {
                members.swap_remove(i);
            }
            if let Some(p) = e.local_port {
                self.used_ports.remove(&p);
            }
        }
    }

    fn alloc_port(&mut self) -> Option<u16> {
        let span = usize::from(self.ports.end() - self.ports.start()) + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == *self.ports.end() {
                *self.ports.start()
            } else {
                p + 1
            };
            let listened = self.listeners.iter().any(|(_, l)| l.port == p);
            if !listened && self.used_ports.insert(p) {
                return Some(p);
            }
        }
        None
    }

    fn release(&mut self, conn: ConnId, abort: bool) {
        let deadline = self.now + LINGER;
        let Some(e) = self.conns.get_mut(conn) else {
            return;
        };
        if matches!(e.phase, Phase::Released { .. } | Phase::TimeWait { .. }) {
            return;
        }
        e.phase = Phase::Released { deadline };
        let shard = e.shard;
        let s = self.shards[shard].get_mut::<tcp::Socket>(e.handle);
        if abort {
            s.abort();
        } else {
            // What the owner left unread is dropped (its window reopens for the peer's FIN);
            // only data arriving after this point resets the connection (see `scan_shard`).
            while s.recv(|b| (b.len(), b.len())).is_ok_and(|n| n > 0) {}
            s.close();
        }
        self.mark(shard);
    }

    /// Bytes moved on `conn`: its shard needs an egress pass (data to send, or a window update).
    fn moved(&mut self, conn: ConnId) {
        if let Some(shard) = self.conns.get(conn).map(|e| e.shard) {
            self.mark(shard);
        }
    }

    /// Record the readiness the owner has now seen (after it received or sent), so that the
    /// next change — not the one it just consumed — raises `Ready`.
    fn refresh(&mut self, conn: ConnId) {
        if let Some(e) = self.conns.get_mut(conn) {
            e.last = fingerprint(self.shards[e.shard].get::<tcp::Socket>(e.handle));
        }
    }

    /// Takes received bytes of `conn` with `take` (a copy out or a look in place), none while
    /// the handshake is under way, and records what the owner has now seen.
    fn dequeue(
        &mut self,
        conn: ConnId,
        take: impl FnOnce(&mut tcp::Socket<'static>) -> Result<usize, tcp::RecvError>,
    ) -> Result<usize, RecvError> {
        let s = self.socket_mut(conn).ok_or(RecvError::Invalid)?;
        let r = if matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived) {
            Ok(0)
        } else {
            match take(s) {
                Ok(n) => Ok(n),
                Err(tcp::RecvError::Finished) => Err(RecvError::Finished),
                Err(tcp::RecvError::InvalidState) => Err(RecvError::Reset),
            }
        };
        // Taking bytes gives the socket something to send only when its window has grown
        // enough to be worth a window update; otherwise its shard needs no egress pass for it
        // (a small request read from a large buffer never does).
        let update = matches!(r, Ok(n) if n > 0) && s.window_to_update();
        self.refresh(conn);
        if update {
            self.moved(conn);
        }
        r
    }

    fn socket(&self, conn: ConnId) -> Option<&tcp::Socket<'static>> {
        let e = self.conns.open(conn)?;
        Some(self.shards[e.shard].get::<tcp::Socket>(e.handle))
    }

    fn socket_mut(&mut self, conn: ConnId) -> Option<&mut tcp::Socket<'static>> {
        let e = self.conns.open(conn)?;
        let (shard, h) = (e.shard, e.handle);
        Some(self.shards[shard].get_mut::<tcp::Socket>(h))
    }
}

/// The readiness that matters to the layer above. `writable` needs a useful amount of free space
/// so that a sender is not woken for every acknowledged byte.
fn fingerprint(s: &tcp::Socket<'_>) -> Fingerprint {
    let free = s.send_capacity() - s.send_queue();
    let want = (s.send_capacity() / 4).clamp(1, 16 * 1024);
    Fingerprint {
        state: s.state() as u8,
        readable: s.can_recv(),
        writable: s.may_send() && free >= want,
        flushed: s.send_queue() == 0,
    }
}

fn link_local_from_mac(mac: [u8; 6]) -> std::net::Ipv6Addr {
    let seg = |a: u8, b: u8| (u16::from(a) << 8) | u16::from(b);
    std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        seg(mac[0] ^ 0x02, mac[1]),
        seg(mac[2], 0xff),
        seg(0xfe, mac[3]),
        seg(mac[4], mac[5]),
    )
}
