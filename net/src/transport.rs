//! The contract between a network stack and the layers above it (TLS, HTTP, the service loop).
//!
//! A connection is a byte pipe named by a [`ConnId`]. The stack reports what happened through
//! [`Event`]s; the layer above then moves bytes with [`Transport::recv`] / [`Transport::send`]
//! until they return 0 ("would block"), and waits for the next event. Both [`Stack`](crate::Stack)
//! (smoltcp) and [`KernelStack`](crate::kernel::KernelStack) (kernel sockets) implement it, so the
//! code above runs unchanged on either.
//!
//! Ownership: the layer above owns a `ConnId` from `Accepted`/`connect` until it calls
//! [`Transport::close`] or [`Transport::abort`]; after that the id is dead and no more events
//! name it. The stack keeps the socket until TCP is done with it.
//!
//! Names are resolved through the same contract ([`Transport::resolve`], then
//! [`Event::Resolved`] and [`Transport::poll_resolution`]); see [`crate::dns`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dns::{DnsError, QueryId, RecordType, Resolution};

/// A connection of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A listener of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u32);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What the stack has to tell the layer above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A connection to a listener is established.
    Accepted {
        /// The listener it came in on.
        listener: ListenerId,
        /// The new connection, owned by the receiver of this event.
        conn: ConnId,
        /// The remote end.
        peer: SocketAddr,
        /// Our end.
        local: SocketAddr,
    },
    /// The readiness of a connection may have changed (data arrived, send space freed, the
    /// outgoing connection completed or failed, the peer closed or reset): check
    /// [`Transport::readiness`] or just try to `recv`/`send`.
    Ready(ConnId),
    /// A DNS query has its outcome: take it with [`Transport::poll_resolution`].
    Resolved(QueryId),
}

/// The state of a connection, as the layer above needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// `recv` would return data now.
    pub readable: bool,
    /// `send` would accept data now.
    pub writable: bool,
    /// The connection is established (an outgoing one has completed its handshake).
    pub established: bool,
    /// The peer sent FIN; once the data queued before it is read, `recv` says `Finished`.
    pub peer_closed: bool,
    /// The connection was reset or timed out.
    pub reset: bool,
    /// Nothing more will happen on this connection.
    pub closed: bool,
}

/// Why data cannot be received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The peer closed its side and everything it sent has been read.
    Finished,
    /// The connection was reset, timed out, or never got established.
    Reset,
    /// The id does not name a live connection (local misuse).
    Invalid,
}

/// Why data cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection can no longer carry data (reset, closed by us, or the peer is gone).
    Closed,
    /// The id does not name a live connection (local misuse).
    Invalid,
}

/// Why a port cannot be listened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// Port 0 or another unusable port.
    BadPort,
    /// Something already listens on the port.
    InUse,
    /// The operating system refused (kernel twin only).
    Os(io::ErrorKind),
}

/// Why an outgoing connection cannot be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The address is unspecified, or the port is 0.
    BadAddress,
    /// The stack has no address of that family or no route to it.
    NoRoute,
    /// No ephemeral port is free.
    NoPorts,
    /// The operating system refused (kernel twin only).
    Os(io::ErrorKind),
}

macro_rules! display_error {
    ($t:ty, $($pat:pat => $msg:expr),+ $(,)?) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self { $($pat => write!(f, "{}", $msg)),+ }
            }
        }
        impl std::error::Error for $t {}
    };
}

display_error!(RecvError,
    RecvError::Finished => "peer closed the connection",
    RecvError::Reset => "connection reset",
    RecvError::Invalid => "no such connection",
);
display_error!(SendError,
    SendError::Closed => "connection closed",
    SendError::Invalid => "no such connection",
);
display_error!(ListenError,
    ListenError::BadPort => "bad port".to_string(),
    ListenError::InUse => "port already in use".to_string(),
    ListenError::Os(k) => format!("cannot listen: {k}"),
);
display_error!(ConnectError,
    ConnectError::BadAddress => "bad address".to_string(),
    ConnectError::NoRoute => "no route to host".to_string(),
    ConnectError::NoPorts => "no free ephemeral port".to_string(),
    ConnectError::Os(k) => format!("cannot connect: {k}"),
);

/// A network stack as the layers above see it. See the module docs for the protocol.
pub trait Transport {
    /// Open a listener on `port`, for IPv4 and IPv6, holding at most `backlog` connections in
    /// their handshake at once (the userspace stack drops further SYNs unanswered, so clients
    /// retry; the kernel twin keeps the OS's own listen queue).
    ///
    /// # Errors
    /// Bad or busy port; OS refusal on the kernel twin.
    fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, ListenError>;

    /// Close a listener: no new connections are accepted (new SYNs are refused); connections
    /// already handed out are not affected; half-open ones are reset.
    fn unlisten(&mut self, listener: ListenerId);

    /// Start connecting to `remote`. The connection reports `Ready` when it is established or has
    /// failed.
    ///
    /// # Errors
    /// No route, no address of the family, no free port; OS refusal on the kernel twin.
    fn connect(&mut self, remote: SocketAddr) -> Result<ConnId, ConnectError>;

    /// Next event, if any. Call until `None` after every [`Transport::poll`].
    fn poll_event(&mut self) -> Option<Event>;

    /// Copy received bytes into `buf`. `Ok(0)` means nothing now.
    ///
    /// # Errors
    /// [`RecvError::Finished`] at end of stream, [`RecvError::Reset`], [`RecvError::Invalid`].
    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, RecvError>;

    /// Offer the received bytes of `conn` to `take` where they lie, without a copy: one slice
    /// (up to where the stack's buffer wraps; call again for the rest), possibly empty; `take`
    /// returns how many it used, and those are consumed as [`Transport::recv`] would. Returns
    /// that count, or `Ok(None)` when this stack cannot lend its buffer (then `take` is not
    /// called: use `recv`). The default is `Ok(None)`.
    ///
    /// # Errors
    /// As [`Transport::recv`].
    fn recv_in_place(
        &mut self,
        conn: ConnId,
        take: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        let _ = (conn, take);
        Ok(None)
    }

    /// Queue bytes for sending. Returns how many were taken; `Ok(0)` means no space now.
    ///
    /// # Errors
    /// [`SendError::Closed`] when the connection cannot carry data, [`SendError::Invalid`].
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, SendError>;

    /// Bytes queued for sending but not yet acknowledged by the peer (0 when all delivered).
    fn send_queue(&self, conn: ConnId) -> usize;

    /// Where the connection stands.
    fn readiness(&self, conn: ConnId) -> Readiness;

    /// The remote and local addresses.
    fn endpoints(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)>;

    /// Half-close: send what is queued, then FIN; keep receiving. The id stays ours.
    fn shutdown_write(&mut self, conn: ConnId);

    /// Graceful close: send what is queued, then FIN. Releases the id.
    fn close(&mut self, conn: ConnId);

    /// Abortive close: reset now. Releases the id.
    fn abort(&mut self, conn: ConnId);

    /// Register the stack's IO sources with the loop's poll under `token`; an event for that
    /// token means "call [`Transport::poll`]"; the loop calls it every pass anyway.
    ///
    /// # Errors
    /// The registration failed.
    fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()>;

    /// Do the network work due at `now`: read what the OS has, run protocol timers, transmit.
    /// Queues events for [`Transport::poll_event`]. Call it on every loop pass, and again after
    /// the layer above has sent data so it goes out in the same pass.
    fn poll(&mut self, now: Instant);

    /// How long until [`Transport::poll`] has timed work to do (`None`: only when woken by IO).
    fn poll_delay(&mut self, now: Instant) -> Option<Duration>;

    /// Start resolving `name` to addresses of `rtype`; [`Event::Resolved`] follows (in a later
    /// [`Transport::poll_event`], also for a literal address, which never reaches DNS).
    ///
    /// # Errors
    /// [`DnsError::InvalidName`], [`DnsError::NoServers`], [`DnsError::Busy`]; nothing was
    /// started then.
    fn resolve(&mut self, name: &str, rtype: RecordType) -> Result<QueryId, DnsError>;

    /// The outcome of `query` once [`Event::Resolved`] named it, handed out once (the query is
    /// forgotten then); `None` while it runs or for an unknown id.
    fn poll_resolution(&mut self, query: QueryId) -> Option<Resolution>;

    /// Stop a query whose outcome is no longer wanted; no event will name it.
    fn cancel_resolution(&mut self, query: QueryId);

    /// Number of connections the stack holds, including those the layer above has released but
    /// TCP is still finishing, and listening sockets. For leak checks and metrics.
    fn socket_count(&self) -> usize;

    /// The userspace stack's counters (sockets accepted and opened, spare-socket pool, listening
    /// sockets...); `None` for a stack that keeps none (the kernel twin). For leak checks and
    /// metrics.
    fn stats(&self) -> Option<crate::stack::StackStats> {
        None
    }
}
