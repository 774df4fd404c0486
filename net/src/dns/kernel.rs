//! DNS on the kernel twin: the questions of [`super`] over kernel UDP sockets (one connected
//! socket per query and server, registered with the twin's inner mio poll), with the same
//! server order, retransmission and deadlines as the userspace stack.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{encode_name, encode_query, literal, literal_outcome, parse_response};
use super::{DnsError, QueryId, RecordType, Resolution, ATTEMPT_TIMEOUT, MAX_QUERIES, RETRANSMIT};
use crate::transport::Event;

/// Tokens at and above this name DNS sockets (`DNS_TOKENS + query id`); the twin's connection
/// and listener tokens stay far below.
pub(crate) const DNS_TOKENS: usize = 1 << (usize::BITS - 2);

struct Query {
    name: Vec<u8>,
    rtype: RecordType,
    servers: Vec<IpAddr>,
    at: usize,
    socket: Option<UdpSocket>,
    txid: u16,
    message: Vec<u8>,
    sent: Instant,
    deadline: Instant,
    outcome: Option<Resolution>,
}

/// The DNS queries of a [`KernelStack`](crate::kernel::KernelStack).
pub(crate) struct KernelResolver {
    /// Given servers; `None`: those of `/etc/resolv.conf`, read at each query.
    servers: Option<Vec<IpAddr>>,
    queries: HashMap<u64, Query>,
    next: u64,
    rng: SmallRng,
    /// 53, except in tests.
    port: u16,
}

impl KernelResolver {
    pub(crate) fn new(seed: u64) -> Self {
        KernelResolver {
            servers: None,
            queries: HashMap::new(),
            next: 0,
            rng: SmallRng::seed_from_u64(seed),
            port: 53,
        }
    }

    pub(crate) fn set_servers(&mut self, servers: Vec<IpAddr>) {
        self.servers = Some(servers);
    }

    fn servers(&self) -> Vec<IpAddr> {
        match &self.servers {
            Some(s) => s.clone(),
            None => std::fs::read_to_string("/etc/resolv.conf")
                .map(|t| super::resolv_conf_servers(&t))
                .unwrap_or_default(),
        }
    }

    pub(crate) fn start(
        &mut self,
        name: &str,
        rtype: RecordType,
        registry: &Registry,
        now: Instant,
        events: &mut VecDeque<Event>,
    ) -> Result<QueryId, DnsError> {
        if self.queries.len() >= MAX_QUERIES {
            return Err(DnsError::Busy);
        }
        let id = self.next;
        let wire = match literal(name) {
            Some(addr) => {
                self.next += 1;
                let mut q = Query::new(Vec::new(), rtype, Vec::new(), now);
                q.outcome = Some(literal_outcome(addr, rtype));
                self.queries.insert(id, q);
                events.push_back(Event::Resolved(QueryId(id)));
                return Ok(QueryId(id));
            }
            None => encode_name(name)?,
        };
        let servers = self.servers();
        if servers.is_empty() {
            return Err(DnsError::NoServers);
        }
        let mut q = Query::new(wire, rtype, servers, now);
        while let Err(e) = self.ask(&mut q, id, registry, now) {
            q.at += 1;
            if q.at == q.servers.len() {
                return Err(DnsError::Os(e.kind()));
            }
        }
        self.next += 1;
        self.queries.insert(id, q);
        Ok(QueryId(id))
    }

    /// Opens a socket to `q`'s current server and sends the question.
    fn ask(&mut self, q: &mut Query, id: u64, registry: &Registry, now: Instant) -> io::Result<()> {
        if let Some(mut old) = q.socket.take() {
            let _ = registry.deregister(&mut old);
        }
        let server = SocketAddr::new(q.servers[q.at], self.port);
        let any: IpAddr = match server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let mut socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
        socket.connect(server)?;
        registry.register(
            &mut socket,
            Token(DNS_TOKENS + id as usize),
            Interest::READABLE,
        )?;
        q.txid = self.rng.random();
        q.message = encode_query(&q.name, q.rtype, q.txid);
        // A lost datagram is what the retransmission is for.
        let _ = socket.send(&q.message);
        q.socket = Some(socket);
        q.sent = now;
        q.deadline = now + ATTEMPT_TIMEOUT;
        Ok(())
    }

    /// Moves `q` to its next server, or ends it with `Timeout`.
    fn next_server(&mut self, q: &mut Query, id: u64, registry: &Registry, now: Instant) {
        loop {
            q.at += 1;
            if q.at >= q.servers.len() {
                self.finish(q, registry, Err(DnsError::Timeout));
                return;
            }
            if self.ask(q, id, registry, now).is_ok() {
                return;
            }
        }
    }

    fn finish(&mut self, q: &mut Query, registry: &Registry, outcome: Resolution) {
        if let Some(mut s) = q.socket.take() {
            let _ = registry.deregister(&mut s);
        }
        q.outcome = Some(outcome);
    }

    /// The socket of query `token - DNS_TOKENS` is readable.
    pub(crate) fn readable(
        &mut self,
        token: Token,
        registry: &Registry,
        now: Instant,
        events: &mut VecDeque<Event>,
    ) {
        let id = (token.0 - DNS_TOKENS) as u64;
        let Some(mut q) = self.queries.remove(&id) else {
            return;
        };
        let mut buf = [0u8; 1500];
        while let Some(socket) = q.socket.as_ref() {
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port unreachable and friends: this server is no good.
                Err(_) => {
                    self.next_server(&mut q, id, registry, now);
                    continue;
                }
            };
            match parse_response(&buf[..n], q.txid, q.rtype, &q.name) {
                None => {}
                Some(Err(DnsError::Timeout)) => self.next_server(&mut q, id, registry, now),
                Some(outcome) => self.finish(&mut q, registry, outcome),
            }
        }
        if q.outcome.is_some() {
            events.push_back(Event::Resolved(QueryId(id)));
        }
        self.queries.insert(id, q);
    }

    /// Retransmits and moves on at the deadlines.
    pub(crate) fn poll(&mut self, registry: &Registry, now: Instant, events: &mut VecDeque<Event>) {
        let due: Vec<u64> = self
            .queries
            .iter()
            .filter(|(_, q)| q.socket.is_some() && q.next_timer() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let mut q = self.queries.remove(&id).expect("listed");
            if now >= q.deadline {
                self.next_server(&mut q, id, registry, now);
            } else if let Some(s) = &q.socket {
                let _ = s.send(&q.message);
                q.sent = now;
            }
            if q.outcome.is_some() {
                events.push_back(Event::Resolved(QueryId(id)));
            }
            self.queries.insert(id, q);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queries
            .values()
            .filter(|q| q.socket.is_some())
            .map(Query::next_timer)
            .min()
    }

    pub(crate) fn take(&mut self, id: QueryId) -> Option<Resolution> {
        let outcome = self.queries.get_mut(&id.0)?.outcome.take()?;
        self.queries.remove(&id.0);
        Some(outcome)
    }

    pub(crate) fn cancel(&mut self, id: QueryId, registry: &Registry) {
        if let Some(mut q) = self.queries.remove(&id.0) {
            if let Some(mut s) = q.socket.take() {
                let _ = registry.deregister(&mut s);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queries.values().filter(|q| q.socket.is_some()).count()
    }
}

impl Query {
    fn new(name: Vec<u8>, rtype: RecordType, servers: Vec<IpAddr>, now: Instant) -> Self {
        Query {
            name,
            rtype,
            servers,
            at: 0,
            socket: None,
            txid: 0,
            message: Vec::new(),
            sent: now,
            deadline: now,
            outcome: None,
        }
    }

    fn next_timer(&self) -> Instant {
        (self.sent + RETRANSMIT).min(self.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket as StdUdp;
    use std::time::Duration;

    /// A kernel resolver against a fake server on loopback: an answer, a lost first datagram
    /// (answered on retransmission), NXDOMAIN, a dead server followed by a live one.
    #[test]
    fn asks_servers_in_turn_and_retransmits() {
        let server = StdUdp::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(16);
        let mut r = KernelResolver::new(1);
        r.port = server.local_addr().unwrap().port();
        let dead: IpAddr = "127.0.0.2".parse().unwrap();
        r.set_servers(vec![dead, "127.0.0.1".parse().unwrap()]);
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        let q = r
            .start(
                "upstream.test",
                RecordType::A,
                poll.registry(),
                t0,
                &mut out,
            )
            .unwrap();
        // Nothing listens on 127.0.0.2: the ICMP error (or the deadline) moves on to 127.0.0.1.
        let mut now = t0;
        let mut buf = [0u8; 512];
        let mut answered = 0;
        let want: IpAddr = "198.18.0.1".parse().unwrap();
        while out.is_empty() && now < t0 + Duration::from_secs(10) {
            now += Duration::from_millis(500);
            r.poll(poll.registry(), now, &mut out);
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                answered += 1;
                if answered == 1 {
                    continue; // lose the first question: the retransmission gets the answer
                }
                server
                    .send_to(&super::super::answer(&buf[..n], &[want], false), from)
                    .unwrap();
            }
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            for e in events.iter() {
                r.readable(e.token(), poll.registry(), now, &mut out);
            }
        }
        assert_eq!(out.pop_front(), Some(Event::Resolved(q)));
        assert_eq!(r.take(q), Some(Ok(vec![want])));
        assert_eq!(r.take(q), None);
        assert!(answered >= 2);
    }

    #[test]
    fn literals_and_missing_servers() {
        let poll = mio::Poll::new().unwrap();
        let mut r = KernelResolver::new(2);
        let mut out = VecDeque::new();
        let now = Instant::now();
        let q = r
            .start("[::1]", RecordType::Aaaa, poll.registry(), now, &mut out)
            .unwrap();
        assert_eq!(out.pop_front(), Some(Event::Resolved(q)));
        assert_eq!(r.take(q), Some(Ok(vec!["::1".parse().unwrap()])));
        r.set_servers(Vec::new());
        assert_eq!(
            r.start("a.test", RecordType::A, poll.registry(), now, &mut out),
            Err(DnsError::NoServers)
        );
        assert_eq!(
            r.start("a..test", RecordType::A, poll.registry(), now, &mut out),
            Err(DnsError::InvalidName)
        );
        assert_eq!(r.len(), 0);
    }
}
