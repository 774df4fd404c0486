//! The connection table: maps [`ConnId`]s (slab index + generation, so a stale id never names a
//! new connection) to smoltcp socket handles and paf's view of each connection's life.

use std::time::Instant;

use slab::Slab;
use smoltcp::iface::SocketHandle;

use crate::transport::{ConnId, ListenerId};

/// Where a connection is in its life, from paf's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Taken from a listener pool, handshake not finished, not yet handed out; given up (reset)
    /// at `until`.
    Embryonic {
        listener: ListenerId,
        until: Instant,
    },
    /// Handed to the layer above (accepted, or an outgoing connection).
    Open,
    /// Released by the layer above; TCP is finishing. Forced shut at the deadline.
    Released { deadline: Instant },
    /// Released and in TIME-WAIT: kept only until `until`, long enough for the last ACK to go
    /// out (and be repeated once if the peer's FIN comes again), then recycled.
    TimeWait { until: Instant },
}

/// A connection's readiness as last reported, to emit `Ready` only on change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub state: u8,
    pub readable: bool,
    pub writable: bool,
    pub flushed: bool,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub handle: SocketHandle,
    /// The socket set (shard) holding the socket.
    pub shard: usize,
    pub generation: u32,
    pub phase: Phase,
    pub last: Fingerprint,
    /// Ephemeral port to give back when the socket is gone (outgoing connections).
    pub local_port: Option<u16>,
    /// Bytes received and dropped since the layer above released it.
    pub after_close: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: Slab<Entry>,
    generation: u32,
}

impl Table {
    pub fn insert(
        &mut self,
        handle: SocketHandle,
        shard: usize,
        phase: Phase,
        local_port: Option<u16>,
    ) -> ConnId {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let key = self.entries.insert(Entry {
            handle,
            shard,
            generation,
            phase,
            last: Fingerprint::default(),
            local_port,
            after_close: 0,
        });
        ConnId((u64::from(generation) << 32) | key as u64)
    }

    fn key(id: ConnId) -> (usize, u32) {
        ((id.0 & 0xffff_ffff) as usize, (id.0 >> 32) as u32)
    }

    pub fn get(&self, id: ConnId) -> Option<&Entry> {
        let (key, generation) = Self::key(id);
        self.entries.get(key).filter(|e| e.generation == generation)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        let (key, generation) = Self::key(id);
        self.entries
            .get_mut(key)
            .filter(|e| e.generation == generation)
    }

    /// An entry the layer above may still use (not released).
    pub fn open(&self, id: ConnId) -> Option<&Entry> {
        self.get(id).filter(|e| e.phase == Phase::Open)
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Entry> {
        self.get(id)?;
        Some(self.entries.remove(Self::key(id).0))
    }

    /// Fill `out` with every live id (reusing its allocation).
    pub fn ids_into(&self, out: &mut Vec<ConnId>) {
        out.clear();
        out.extend(
            self.entries
                .iter()
                .map(|(k, e)| ConnId((u64::from(e.generation) << 32) | k as u64)),
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::iface::SocketSet;
    use smoltcp::socket::udp;

    fn handle() -> SocketHandle {
        let mut set = SocketSet::new(vec![]);
        set.add(udp::Socket::new(
            udp::PacketBuffer::new(vec![], vec![]),
            udp::PacketBuffer::new(vec![], vec![]),
        ))
    }

    #[test]
    fn stale_ids_do_not_name_new_entries() {
        let mut t = Table::default();
        let a = t.insert(handle(), 0, Phase::Open, None);
        assert!(t.open(a).is_some());
        t.remove(a).unwrap();
        let b = t.insert(handle(), 0, Phase::Open, None);
        assert_ne!(a, b);
        assert!(t.get(a).is_none(), "old id must not reach the reused slot");
        assert!(t.get(b).is_some());
        assert_eq!(t.len(), 1);
    }
}
