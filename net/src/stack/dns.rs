//! DNS on the userspace stack: smoltcp's DNS socket, one per server in use, driven inside
//! [`Stack::poll`](super::Stack) with the timeouts and server order of [`crate::dns`].
//!
//! smoltcp's socket retransmits a question (after 1 s, then 2 s, …) and reports each query as
//! pending, completed or failed; it knows one server per socket in paf's build (its
//! `DNS_MAX_SERVER_COUNT` is 1), so each server gets its own socket, made when a query first
//! needs it and removed when no query uses it. This module adds what smoltcp leaves to the
//! caller: a deadline per server ([`ATTEMPT_TIMEOUT`]), moving on to the next server, literal
//! addresses without a query, and an [`Event::Resolved`] when a query has its outcome.
//!
//! smoltcp reports "no such name", "no record of that type" and "no route to the server" all as
//! a failure; servers the interface has no source address for are left out up front, so a
//! failure before the deadline means the server said no ([`DnsError::NotFound`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dns::{self, GetQueryResultError, StartQueryError};
use smoltcp::wire::IpAddress;

use crate::dns::{literal, literal_outcome, DnsError, QueryId, RecordType, Resolution};
use crate::dns::{ATTEMPT_TIMEOUT, MAX_QUERIES};
use crate::transport::Event;

struct Query {
    name: String,
    rtype: RecordType,
    servers: Vec<IpAddr>,
    /// Index into `servers` of the one being asked.
    at: usize,
    /// The smoltcp query running, with the server's socket.
    active: Option<(SocketHandle, dns::QueryHandle)>,
    deadline: Instant,
    outcome: Option<Resolution>,
}

/// The queries of one stack.
#[derive(Default)]
pub(crate) struct Resolver {
    /// One socket per server in use, with the number of queries using it.
    sockets: HashMap<IpAddr, (SocketHandle, usize)>,
    queries: HashMap<u64, Query>,
    next: u64,
}

impl Resolver {
    /// Starts a query; the question goes out at the next egress.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        name: &str,
        rtype: RecordType,
        servers: &[IpAddr],
        now: Instant,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        events: &mut VecDeque<Event>,
    ) -> Result<QueryId, DnsError> {
        if self.queries.len() >= MAX_QUERIES {
            return Err(DnsError::Busy);
        }
        let id = QueryId(self.next);
        if let Some(addr) = literal(name) {
            self.next += 1;
            self.queries
                .insert(id.0, done(name, rtype, literal_outcome(addr, rtype)));
            events.push_back(Event::Resolved(id));
            return Ok(id);
        }
        crate::dns::encode_name(name)?;
        let servers: Vec<IpAddr> = servers
            .iter()
            .copied()
            .filter(|s| has_source_for(iface, *s))
            .collect();
        if servers.is_empty() {
            return Err(DnsError::NoServers);
        }
        let mut q = Query {
            name: name.to_owned(),
            rtype,
            servers,
            at: 0,
            active: None,
            deadline: now + ATTEMPT_TIMEOUT,
            outcome: None,
        };
        self.ask(&mut q, now, iface, sockets)?;
        self.next += 1;
        self.queries.insert(id.0, q);
        Ok(id)
    }

    /// Asks `q`'s current server.
    fn ask(
        &mut self,
        q: &mut Query,
        now: Instant,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
    ) -> Result<(), DnsError> {
        let server = q.servers[q.at];
        let (handle, users) = self.sockets.entry(server).or_insert_with(|| {
            let s = dns::Socket::new(&[IpAddress::from(server)], Vec::new());
            (sockets.add(s), 0)
        });
        let socket = sockets.get_mut::<dns::Socket>(*handle);
        let started = socket.start_query(iface.context(), &q.name, q.rtype.wire());
        let qh = match started {
            Ok(qh) => qh,
            Err(e) => {
                let (handle, users) = (*handle, *users);
                if users == 0 {
                    self.sockets.remove(&server);
                    sockets.remove(handle);
                }
                return Err(match e {
                    StartQueryError::NoFreeSlot => DnsError::Busy,
                    StartQueryError::InvalidName | StartQueryError::NameTooLong => {
                        DnsError::InvalidName
                    }
                });
            }
        };
        *users += 1;
        q.active = Some((*handle, qh));
        q.deadline = now + ATTEMPT_TIMEOUT;
        Ok(())
    }

    /// Stops `q`'s running smoltcp query (if any) and drops unused sockets.
    fn release(&mut self, q: &mut Query, sockets: &mut SocketSet<'static>, cancel: bool) {
        let Some((handle, qh)) = q.active.take() else {
            return;
        };
        if cancel {
            sockets.get_mut::<dns::Socket>(handle).cancel_query(qh);
        }
        let server = q.servers[q.at];
        if let Some((h, users)) = self.sockets.get_mut(&server) {
            *users -= 1;
            if *users == 0 {
                let h = *h;
                self.sockets.remove(&server);
                sockets.remove(h);
            }
        }
    }

    /// Collects outcomes after ingress, moves timed-out queries to their next server.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        events: &mut VecDeque<Event>,
    ) {
        if self.queries.is_empty() {
            return;
        }
        let ids: Vec<u64> = self
            .queries
            .iter()
            .filter(|(_, q)| q.active.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let mut q = self.queries.remove(&id).expect("listed");
            let (handle, qh) = q.active.expect("filtered");
            let r = sockets.get_mut::<dns::Socket>(handle).get_query_result(qh);
            let outcome = match r {
                Ok(addrs) => Some(Ok(addrs.iter().map(|a| IpAddr::from(*a)).collect())),
                Err(GetQueryResultError::Failed) => Some(Err(DnsError::NotFound)),
                Err(GetQueryResultError::Pending) if now < q.deadline => None,
                Err(GetQueryResultError::Pending) => {
                    log::debug!(
                        "dns: {} {} unanswered by {}",
                        q.rtype,
                        q.name,
                        q.servers[q.at]
                    );
                    self.release(&mut q, sockets, true);
                    q.at += 1;
                    if q.at < q.servers.len() && self.ask(&mut q, now, iface, sockets).is_ok() {
                        None
                    } else {
                        Some(Err(DnsError::Timeout))
                    }
                }
            };
            if let Some(outcome) = outcome {
                // A completed or failed smoltcp query has freed its slot already.
                self.release(&mut q, sockets, false);
                log::debug!("dns: {} {} → {outcome:?}", q.rtype, q.name);
                q.outcome = Some(outcome);
                events.push_back(Event::Resolved(QueryId(id)));
            }
            self.queries.insert(id, q);
        }
    }

    /// The earliest server deadline of a running query.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queries
            .values()
            .filter(|q| q.active.is_some())
            .map(|q| q.deadline)
            .min()
    }

    /// The outcome of `id`, once.
    pub(crate) fn take(&mut self, id: QueryId) -> Option<Resolution> {
        let q = self.queries.get_mut(&id.0)?;
        let outcome = q.outcome.take()?;
        self.queries.remove(&id.0);
        Some(outcome)
    }

    /// Forgets `id`, stopping its smoltcp query.
    pub(crate) fn cancel(&mut self, id: QueryId, sockets: &mut SocketSet<'static>) {
        if let Some(mut q) = self.queries.remove(&id.0) {
            self.release(&mut q, sockets, true);
        }
    }
}

fn done(name: &str, rtype: RecordType, outcome: Resolution) -> Query {
    Query {
        name: name.to_owned(),
        rtype,
        servers: Vec::new(),
        at: 0,
        active: None,
        deadline: crate::clock::origin(),
        outcome: Some(outcome),
    }
}

/// Whether the interface has an address to send to `server` from (a global one for IPv6
/// servers that are not link-local).
fn has_source_for(iface: &Interface, server: IpAddr) -> bool {
    iface
        .ip_addrs()
        .iter()
        .any(|c| match (c.address(), server) {
            (IpAddress::Ipv4(_), IpAddr::V4(_)) => true,
            (IpAddress::Ipv6(a), IpAddr::V6(s)) => {
                !a.is_unicast_link_local() || s.is_unicast_link_local()
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use smoltcp::socket::udp;

    use crate::device::Faults;
    use crate::dns::{answer, DnsError, QueryId, RecordType, Resolution, ATTEMPT_TIMEOUT};
    use crate::testing::{Pair, A_V4, B_V4, B_V6};
    use crate::transport::{Event, Transport};

    /// What the fake server on B does with a question.
    #[derive(Clone, Copy)]
    enum Server {
        Answer,
        /// Drop the first question (the retransmission gets the answer).
        LoseFirst,
        NxDomain,
        Silent,
    }

    fn pair(servers: Vec<IpAddr>) -> Pair {
        Pair::new(1500, Faults::default(), Faults::default(), 5, move |c| {
            c.dns_servers = servers.clone()
        })
    }

    /// Runs the pair with a DNS server on B until A resolves `q`; returns the outcome, the
    /// virtual time it took and the questions B saw.
    fn run(p: &mut Pair, q: QueryId, mode: Server) -> (Resolution, Duration, usize) {
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 4096]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 4096]),
        );
        s.bind(53).unwrap();
        let h = p.b.shards[0].add(s);
        let start = p.now;
        let mut seen = 0;
        let mut buf = [0u8; 1500];
        loop {
            p.poll();
            while let Some(ev) = p.a.poll_event() {
                if ev == Event::Resolved(q) {
                    let r = p.a.poll_resolution(q).expect("outcome");
                    assert_eq!(p.a.poll_resolution(q), None, "handed out once");
                    p.b.shards[0].remove(h);
                    return (r, p.now - start, seen);
                }
            }
            let sock = p.b.shards[0].get_mut::<udp::Socket>(h);
            while let Ok((n, meta)) = sock.recv_slice(&mut buf) {
                seen += 1;
                let reply = match mode {
                    Server::Answer => answer(&buf[..n], &[A_V4.into()], false),
                    Server::LoseFirst if seen == 1 => continue,
                    Server::LoseFirst => answer(&buf[..n], &[A_V4.into()], false),
                    Server::NxDomain => answer(&buf[..n], &[], true),
                    Server::Silent => continue,
                };
                sock.send_slice(&reply, meta.endpoint).unwrap();
            }
            assert!(p.now - start < Duration::from_secs(60), "no outcome");
            p.advance(Duration::from_millis(100));
        }
    }

    #[test]
    fn a_query_is_answered_over_ipv4_and_ipv6_servers() {
        for server in [IpAddr::from(B_V4), IpAddr::from(B_V6)] {
            let mut p = pair(vec![server]);
            p.poll();
            let q = p.a.resolve("upstream.test", RecordType::A).unwrap();
            let (r, took, seen) = run(&mut p, q, Server::Answer);
            assert_eq!(r, Ok(vec![IpAddr::from(A_V4)]), "via {server}");
            assert!(took < Duration::from_secs(1), "{took:?}");
            assert_eq!(seen, 1);
            assert_eq!(
                p.a.socket_count(),
                0,
                "the DNS socket is gone with its query"
            );
        }
    }

    #[test]
    fn a_lost_question_is_retransmitted() {
        let mut p = pair(vec![B_V4.into()]);
        let q = p.a.resolve("upstream.test", RecordType::A).unwrap();
        let (r, took, seen) = run(&mut p, q, Server::LoseFirst);
        assert_eq!(r, Ok(vec![IpAddr::from(A_V4)]));
        assert!(
            took >= Duration::from_secs(1) && took < ATTEMPT_TIMEOUT,
            "{took:?}"
        );
        assert_eq!(seen, 2);
    }

    #[test]
    fn no_such_name_is_not_found() {
        let mut p = pair(vec![B_V4.into()]);
        let q = p.a.resolve("nosuch.test", RecordType::Aaaa).unwrap();
        assert_eq!(run(&mut p, q, Server::NxDomain).0, Err(DnsError::NotFound));
    }

    #[test]
    fn silent_servers_are_each_given_their_turn_then_it_times_out() {
        let mut p = pair(vec![B_V4.into(), B_V6.into()]);
        let q = p.a.resolve("upstream.test", RecordType::A).unwrap();
        let (r, took, seen) = run(&mut p, q, Server::Silent);
        assert_eq!(r, Err(DnsError::Timeout));
        assert!(took >= ATTEMPT_TIMEOUT * 2, "{took:?}");
        assert!(
            took < ATTEMPT_TIMEOUT * 2 + Duration::from_millis(500),
            "{took:?}"
        );
        // Each server: the question and one retransmission.
        assert_eq!(seen, 4);
        assert_eq!(p.a.socket_count(), 0);
    }

    #[test]
    fn literals_resolve_without_a_server_and_misuse_is_refused() {
        let mut p = pair(Vec::new());
        let q = p.a.resolve("[fd00:198:18::2]", RecordType::Aaaa).unwrap();
        assert_eq!(p.a.poll_event(), Some(Event::Resolved(q)));
        assert_eq!(p.a.poll_resolution(q), Some(Ok(vec![IpAddr::from(B_V6)])));
        let q = p.a.resolve("198.18.0.2", RecordType::Aaaa).unwrap();
        assert_eq!(p.a.poll_event(), Some(Event::Resolved(q)));
        assert_eq!(p.a.poll_resolution(q), Some(Err(DnsError::NotFound)));
        assert_eq!(
            p.a.resolve("upstream.test", RecordType::A),
            Err(DnsError::NoServers)
        );
        let mut p = pair(vec![B_V4.into()]);
        assert_eq!(
            p.a.resolve("bad..name", RecordType::A),
            Err(DnsError::InvalidName)
        );
        // A cancelled query is forgotten and its socket removed.
        let q = p.a.resolve("upstream.test", RecordType::A).unwrap();
        assert_eq!(p.a.socket_count(), 1);
        p.a.cancel_resolution(q);
        assert_eq!(p.a.socket_count(), 0);
        assert_eq!(p.a.poll_resolution(q), None);
    }
}
