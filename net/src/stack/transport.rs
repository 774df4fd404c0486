//! The [`Transport`] contract implemented by [`Stack`]: listeners, connections as byte pipes,
//! the poll pass (ingress per shard, egress and scans for touched or due shards) and DNS.

use super::*;

impl Transport for Stack {
    fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, ListenError> {
        if port == 0 {
            return Err(ListenError::BadPort);
        }
        if self.listeners.iter().any(|(_, l)| l.port == port) {
            return Err(ListenError::InUse);
        }
        let n = self.shards.len();
        // Listening sockets are made when SYNs arrive (see `listen_for_syn`).
        let id = self.listeners.insert(Listener {
            port,
            backlog: backlog.max(1),
            half_open: 0,
            pools: vec![Vec::new(); n],
        });
        Ok(ListenerId(id as u32))
    }

    fn unlisten(&mut self, listener: ListenerId) {
        let Some(l) = self.listeners.try_remove(listener.0 as usize) else {
            return;
        };
        for (k, pool) in l.pools.into_iter().enumerate() {
            for h in pool {
                if let smoltcp::socket::Socket::Tcp(s) = self.shards[k].remove(h) {
                    self.spare.give(s);
                }
            }
        }
        let mut ids = std::mem::take(&mut self.scratch);
        self.conns.ids_into(&mut ids);
        for &id in &ids {
            if let Some(e) = self.conns.get_mut(id) {
                if matches!(e.phase, Phase::Embryonic { listener: l, .. } if l == listener) {
                    e.phase = Phase::Released {
                        deadline: self.now + LINGER,
                    };
                    let shard = e.shard;
                    self.shards[shard].get_mut::<tcp::Socket>(e.handle).abort();
                    self.mark(shard);
                }
            }
        }
        self.scratch = ids;
    }

    fn connect(&mut self, remote: SocketAddr) -> Result<ConnId, ConnectError> {
        if remote.ip().is_unspecified() || remote.port() == 0 {
            return Err(ConnectError::BadAddress);
        }
        let has_family = self.iface.ip_addrs().iter().any(|c| {
            matches!(
                (c.address(), remote.ip()),
                (smoltcp::wire::IpAddress::Ipv4(_), IpAddr::V4(_))
            ) || matches!(
                (c.address(), remote.ip()),
                (smoltcp::wire::IpAddress::Ipv6(a), IpAddr::V6(_)) if !a.is_unicast_link_local()
            )
        });
        if !has_family {
            return Err(ConnectError::NoRoute);
        }
        let port = self.alloc_port().ok_or(ConnectError::NoPorts)?;
        let mut s = self.spare.take(&self.config.tcp);
        let remote_ep = IpEndpoint::new(remote.ip().into(), remote.port());
        if let Err(e) = s.connect(self.iface.context(), remote_ep, port) {
            self.used_ports.remove(&port);
            return Err(match e {
                tcp::ConnectError::Unaddressable => ConnectError::NoRoute,
                tcp::ConnectError::InvalidState => ConnectError::BadAddress,
            });
        }
        let remote_bytes = match remote.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let shard = shard::of(&remote_bytes, remote.port(), port, self.shards.len());
        let h = self.shards[shard].add(s);
        self.stats.connected += 1;
        let id = self.conns.insert(h, shard, Phase::Open, Some(port));
        self.members[shard].push(id);
        self.mark(shard);
        Ok(id)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.dequeue(conn, |s| s.recv_slice(buf))
    }

    fn recv_in_place(
        &mut self,
        conn: ConnId,
        take: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        // smoltcp's own ring: the slice up to its wrap; what `take` used is dequeued.
        self.dequeue(conn, |s| {
            s.recv(|buf| {
                let n = take(buf).min(buf.len());
                (n, n)
            })
        })
        .map(Some)
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, SendError> {
        let s = self.socket_mut(conn).ok_or(SendError::Invalid)?;
        let r = if s.may_send() {
            s.send_slice(data).map_err(|_| SendError::Closed)
        } else {
            // Still connecting: no room yet, but not an error.
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => Ok(0),
                _ => Err(SendError::Closed),
            }
        };
        self.refresh(conn);
        if matches!(r, Ok(n) if n > 0) {
            self.moved(conn);
        }
        r
    }

    fn send_queue(&self, conn: ConnId) -> usize {
        self.socket(conn).map_or(0, |s| s.send_queue())
    }

    fn readiness(&self, conn: ConnId) -> Readiness {
        let Some(s) = self.socket(conn) else {
            return Readiness {
                closed: true,
                ..Readiness::default()
            };
        };
        let state = s.state();
        let fp = fingerprint(s);
        Readiness {
            readable: fp.readable,
            writable: fp.writable,
            established: !matches!(
                state,
                tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Closed
            ),
            peer_closed: matches!(
                state,
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            ),
            reset: state == tcp::State::Closed && !s.is_open(),
            closed: state == tcp::State::Closed,
        }
    }

    fn endpoints(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        let s = self.socket(conn)?;
        Some((
            endpoint(s.remote_endpoint()?),
            endpoint(s.local_endpoint()?),
        ))
    }

    fn shutdown_write(&mut self, conn: ConnId) {
        if let Some(s) = self.socket_mut(conn) {
            s.close();
            self.moved(conn);
        }
    }

    fn close(&mut self, conn: ConnId) {
        self.release(conn, false);
    }

    fn abort(&mut self, conn: ConnId) {
        self.release(conn, true);
    }

    fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        if let Some(peer) = &mut self.peer {
            registry.register(peer.bell(), token, mio::Interest::READABLE)?;
        }
        match self.device.link() {
            Link::Tap(t) => registry.register(
                &mut mio::unix::SourceFd(&t.as_raw_fd()),
                token,
                mio::Interest::READABLE,
            ),
            Link::Wire(w) => {
                let (tx, mut rx) = mio::unix::pipe::new()?;
                registry.register(&mut rx, token, mio::Interest::READABLE)?;
                w.set_notify(move || {
                    // Full pipe: a wake-up is pending anyway.
                    let _ = io::Write::write(&mut &tx, &[1]);
                });
                self.wake_rx = Some(rx);
                Ok(())
            }
        }
    }

    fn poll(&mut self, now: Instant) {
        self.now = now;
        if let Some(rx) = &self.wake_rx {
            // Drain before reading frames: a frame queued after this re-arms the edge.
            let mut buf = [0u8; 256];
            while matches!(io::Read::read(&mut &*rx, &mut buf), Ok(n) if n > 0) {}
        }
        let ts = to_smol(now);
        self.iface.poll_maintenance(ts);
        // Shard 0 carries DHCP and DNS; then what the layer above touched, and what is due.
        self.touch(0);
        // The list is handed back emptied, so that marking allocates only once.
        let mut pending = std::mem::take(&mut self.pending);
        for &k in &pending {
            self.touch(k);
        }
        pending.clear();
        pending.append(&mut self.pending);
        self.pending = pending;
        let mut due = std::mem::take(&mut self.due);
        self.wake.take_due(ts, &mut due);
        for k in due.drain(..) {
            self.timed[k] = true;
            self.touch(k);
        }
        self.due = due;
        let n = self.shards.len();
        let mut budget = RX_BUDGET;
        self.more_rx = false;
        // Frames other workers handed over come first, outside the budget (they are few).
        let mut inbox = std::mem::take(&mut self.inbox);
        let by_dhcp = self.config.ipv4 == Ipv4Setting::Dhcp;
        if let Some(p) = &mut self.peer {
            p.take(&mut inbox);
            // A worker without the DHCP client applies worker 0's lease (after `take` emptied
            // the bell, so a later publication wakes it again).
            if by_dhcp && self.dhcp.is_none() {
                if let Some(lease) = p.lease_update() {
                    let me = Some(p.index());
                    dhcp::apply(
                        &mut self.iface,
                        &mut self.net,
                        &self.config,
                        lease.as_ref(),
                        me,
                    );
                }
            }
        }
        let mut handed = inbox.drain(..);
        loop {
            let from_peer = match handed.next() {
                Some(f) => {
                    self.device.inject(&f);
                    true
                }
                None if budget == 0 => {
                    self.more_rx = true;
                    break;
                }
                None => {
                    budget -= 1;
                    false
                }
            };
            let Some(frame) = self.device.prefetch(ts) else {
                break;
            };
            if let Some(peer) = self.peer.as_ref().filter(|_| !from_peer) {
                let listeners = &self.listeners;
                let listened = |p: u16| listeners.iter().any(|(_, l)| l.port == p);
                match mesh::route(frame, peer.index(), peer.workers(), by_dhcp, listened) {
                    mesh::Route::Here => {}
                    // Every worker's smoltcp learns the neighbour (and this one answers too).
                    mesh::Route::Everywhere => peer.broadcast(frame),
                    mesh::Route::To(to, kind) => {
                        // Another worker's: a segment or ICMP error of its outgoing
                        // connection, a DHCP reply for worker 0's client.
                        peer.send(to, frame, kind);
                        self.device.drop_prefetched();
                        continue;
                    }
                    mesh::Route::Malformed => {
                        peer.malformed();
                        self.device.drop_prefetched();
                        continue;
                    }
                }
            }
            let k = shard::of_frame(frame, n);
            if shard::teaches_neighbours(frame) {
                // Sockets anywhere may be waiting for this neighbour.
                for j in 0..n {
                    if j == 0 || !self.members[j].is_empty() {
                        self.touch(j);
                    }
                }
            } else {
                self.touch(k);
            }
            if let Some(syn) = self.device.prefetched_syn() {
                self.end_time_wait_for_syn(k, syn.from, syn.port);
                if !self.listen_for_syn(k, syn.port) {
                    self.device.drop_prefetched();
                    continue;
                }
            }
            match self
                .iface
                .poll_ingress_single(ts, &mut self.device, &mut self.shards[k])
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    if self.device.last_rx_was_syn() {
                        self.claim_listeners(k);
                    }
                }
            }
        }
        drop(handed);
        self.inbox = inbox;
        let active = std::mem::take(&mut self.active);
        for &k in &active {
            self.claim_listeners(k);
        }
        self.active = active;
        if let Some(lease) = self.dhcp.and_then(|h| dhcp::poll(h, &mut self.shards[0])) {
            dhcp::apply(
                &mut self.iface,
                &mut self.net,
                &self.config,
                lease.as_ref(),
                None,
            );
            if let Some(p) = &mut self.peer {
                p.publish_lease(lease);
            }
        }
        self.resolver
            .poll(now, &mut self.iface, &mut self.shards[0], &mut self.events);
        self.scan(false);
        for i in 0..self.active.len() {
            let k = self.active[i];
            while self
                .iface
                .poll_egress(ts, &mut self.device, &mut self.shards[k])
                == smoltcp::iface::PollResult::SocketStateChanged
            {}
        }
        // Sockets may have changed state on egress (e.g. a connect timed out): report it now.
        self.scan(true);
        for i in 0..self.active.len() {
            let k = self.active[i];
            let at = self.iface.poll_at(ts, &self.shards[k]);
            let deadline = self.deadline[k].map(to_smol);
            let wake = match (at, deadline) {
                (Some(a), Some(d)) => Some(a.min(d)),
                (a, d) => a.or(d),
            };
            self.wake.set(k, wake);
            self.in_pass[k] = false;
            self.timed[k] = false;
        }
        self.active.clear();
    }

    fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        if self.more_rx || !self.events.is_empty() || !self.pending.is_empty() {
            return Some(Duration::ZERO);
        }
        let ts = to_smol(now);
        let mut delay: Option<Duration> = self.wake.next().map(|at| {
            if at > ts {
                duration_from_smol(at - ts)
            } else {
                Duration::ZERO
            }
        });
        if let Some(at) = self.device.next_rx_at() {
            let d = if at > ts {
                duration_from_smol(at - ts)
            } else {
                Duration::ZERO
            };
            delay = Some(delay.map_or(d, |x| x.min(d)));
        }
        if let Some(at) = self.resolver.next_deadline() {
            let d = at.saturating_duration_since(now);
            delay = Some(delay.map_or(d, |x| x.min(d)));
        }
        delay
    }

    fn resolve(&mut self, name: &str, rtype: RecordType) -> Result<QueryId, DnsError> {
        self.resolver.start(
            name,
            rtype,
            &self.net.dns_servers,
            self.now,
            &mut self.iface,
            &mut self.shards[0],
            &mut self.events,
        )
    }

    fn poll_resolution(&mut self, query: QueryId) -> Option<Resolution> {
        self.resolver.take(query)
    }

    fn cancel_resolution(&mut self, query: QueryId) {
        self.resolver.cancel(query, &mut self.shards[0]);
    }

    fn socket_count(&self) -> usize {
        self.shards.iter().map(|s| s.iter().count()).sum()
    }

    fn stats(&self) -> Option<StackStats> {
        Some(Stack::stats(self))
    }
}
