//! The client's ctx keys and the base ctx: the seed's `Paf.tcp_edn`/`Paf.tls_edn`, its
//! `domain_name`/`ipaddr`/`stack`/`port` example keys, and the DNS resolver fold that runs over
//! the stack.
//!
//! [`ctx`] gives a ctx where, as in the seed's example,
//!
//! ```text
//! ipaddr  ← fold [req stack; req domain_name; dft family Any]   (DNS over the stack; a literal
//!                                                                 address is used as is)
//! tcp_edn ← fold [req stack; req ipaddr; dft port 80]
//! tls_edn ← fold [opt domain_name; opt server_name; req tls_config; req stack; req ipaddr;
//!                 dft port 443]                  (server_name, when given, names the TLS peer)
//! ```
//!
//! so a request needs only `domain_name` (and `tls_config` for TLS, `port` for a non-default
//! port); adding `ipaddr` skips DNS, adding `tcp_edn`/`tls_edn` skips everything.

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::ctx::{self, dft, opt, promise, req, Ctx, Step, TcpEndpoint, TlsEndpoint, Value};
use crate::tls;

use super::Agent;

/// The seed's `tcp_edn` value: stack, address, port.
pub type TcpEdn = TcpEndpoint<Agent>;
/// The seed's `tls_edn` value: domain name, TLS config, stack, address, port.
pub type TlsEdn = TlsEndpoint<Agent, tls::ClientConfig>;

/// Which address family the built-in resolver looks up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Family {
    /// A and AAAA in parallel; the IPv4 address is used when there is one.
    #[default]
    Any,
    /// A only.
    V4,
    /// AAAA only.
    V6,
}

macro_rules! key {
    ($(#[$doc:meta])* $fn:ident: $t:ty = $name:literal) => {
        $(#[$doc])*
        pub fn $fn() -> Value<$t> {
            static KEY: OnceLock<Value<$t>> = OnceLock::new();
            *KEY.get_or_init(|| ctx::make::<$t>($name))
        }
    };
}

key!(
    /// The client agent requests go through (the seed's `stack`).
    agent: Agent = "agent"
);
key!(
    /// The server's name: resolved by DNS for `ipaddr`, sent as SNI and checked against the
    /// certificate for TLS (the seed's `domain_name`).
    domain_name: String = "domain_name"
);
key!(
    /// The name sent as SNI and checked against the certificate, when it differs from
    /// `domain_name` (which is still what DNS resolves): an upstream reached by address or by an
    /// internal name whose certificate is for a public one.
    server_name: String = "server_name"
);
key!(
    /// The server's address (the seed's `ipaddr`).
    ipaddr: IpAddr = "ipaddr"
);
key!(
    /// The server's port; 80 for `tcp_edn` and 443 for `tls_edn` when absent.
    port: u16 = "port"
);
key!(
    /// The TLS client configuration; its presence makes `tls_edn` resolvable.
    tls_config: tls::ClientConfig = "tls_config"
);
key!(
    /// The address family the built-in resolver asks for (default [`Family::Any`]).
    family: Family = "family"
);
key!(
    /// Bytes written first on every new connection, before TLS and HTTP: a PROXY protocol
    /// header ([`http::proxy_protocol::encode`](crate::http::proxy_protocol::encode)). A
    /// connection is reused only by requests with the same preamble, so a header that names
    /// one client never carries another's requests (HTTP/2 multiplexing included).
    preamble: std::sync::Arc<[u8]> = "preamble"
);
key!(
    /// Longest wait for the TCP connection a request (or [`connect`](super::connect)) makes,
    /// instead of the agent's [`Options::connect_timeout`](super::Options::connect_timeout).
    /// A pooled connection reused by the request was made under its own.
    connect_timeout: std::time::Duration = "connect_timeout"
);
key!(
    /// Which addresses may be dialled: an endpoint whose address (after DNS) and port the
    /// filter refuses is not connected to; the next endpoint is tried, and when none is left
    /// the request (or [`connect`](super::connect)) fails with
    /// [`Error::NotAllowed`](super::Error::NotAllowed). A guard against names that resolve
    /// somewhere they should not (an internal address behind a public name).
    address_filter: AddressFilter = "address_filter"
);
key!(
    /// The plain TCP endpoint (the seed's `Paf.tcp_edn`).
    tcp_edn: TcpEdn = "tcp_edn"
);
key!(
    /// The TLS endpoint (the seed's `Paf.tls_edn`), tried before `tcp_edn`.
    tls_edn: TlsEdn = "tls_edn"
);

/// A predicate on the addresses a request may be sent to (see [`address_filter`]).
#[derive(Clone)]
pub struct AddressFilter(std::rc::Rc<dyn Fn(std::net::SocketAddr) -> bool>);

impl AddressFilter {
    /// A filter that allows the addresses `allows` says yes to.
    pub fn new(allows: impl Fn(std::net::SocketAddr) -> bool + 'static) -> AddressFilter {
        AddressFilter(std::rc::Rc::new(allows))
    }

    /// Whether `addr` may be dialled.
    pub fn allows(&self, addr: std::net::SocketAddr) -> bool {
        (self.0)(addr)
    }
}

impl std::fmt::Debug for AddressFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressFilter(..)")
    }
}

/// The base ctx of `agent`: the agent itself, the DNS resolver fold (`ipaddr` from `agent`,
/// `domain_name` and `family`; a literal address is used as is), and the endpoint folds
/// (`tcp_edn` with port 80 by default, `tls_edn` with 443, only when `tls_config` is there). Add
/// `domain_name` (and `tls_config`, `port`) per request.
pub fn ctx(agent: &Agent) -> Ctx {
    Ctx::empty()
        .add(&self::agent(), agent.clone())
        .fold(
            &ipaddr(),
            (
                req(&self::agent()),
                req(&domain_name()),
                dft(&family(), Family::Any),
            ),
            |(stack, name, family): (Agent, String, Family)| resolve(&stack, &name, family),
        )
        .fold(
            &tcp_edn(),
            (req(&self::agent()), req(&ipaddr()), dft(&port(), 80)),
            |(stack, addr, port)| Step::Ready(TcpEndpoint { stack, addr, port }),
        )
        .fold(
            &tls_edn(),
            (
                opt(&domain_name()),
                opt(&server_name()),
                req(&tls_config()),
                req(&self::agent()),
                req(&ipaddr()),
                dft(&port(), 443),
            ),
            |(domain_name, server_name, tls, stack, addr, port)| {
                Step::Ready(TlsEndpoint {
                    domain_name: server_name.or(domain_name),
                    tls,
                    stack,
                    addr,
                    port,
                })
            },
        )
}

/// The resolver fold: a literal address as is, else a DNS query on the stack's loop.
fn resolve(stack: &Agent, name: &str, family: Family) -> Step<IpAddr> {
    if let Some(addr) = net::dns::literal(name) {
        return Step::Ready(addr);
    }
    let (p, c) = promise();
    stack.resolve(name, family, c);
    Step::Pending(p)
}
