//! DHCPv4 for the stack: smoltcp's DHCP client socket, whose events set the interface address,
//! the default route and the DNS servers. The socket itself renews the lease.
//!
//! With several workers on one TAP (see [`mesh`](super::mesh)) worker 0 alone has the socket;
//! it publishes each change of its lease through the mesh and every other worker applies it
//! with [`apply`], as worker 0 did.

use std::net::{IpAddr, Ipv4Addr};

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpCidr, Ipv4Cidr};

use super::mesh::Lease;
use crate::config::Config;

/// What the stack learned from its configuration or from DHCP.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    pub dns_servers: Vec<IpAddr>,
    pub gateway4: Option<Ipv4Addr>,
}

pub(crate) fn socket(sockets: &mut SocketSet<'static>) -> SocketHandle {
    sockets.add(dhcpv4::Socket::new())
}

fn set_ipv4(iface: &mut Interface, cidr: Option<Ipv4Cidr>) {
    iface.update_ip_addrs(|addrs| {
        addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
        if let Some(c) = cidr {
            let _ = addrs.push(IpCidr::Ipv4(c));
        }
    });
}

/// What the DHCP socket has to tell since the last call: `Some(Some(lease))` when a lease was
/// taken or changed, `Some(None)` when it was lost, `None` when nothing changed.
pub(crate) fn poll(
    handle: SocketHandle,
    sockets: &mut SocketSet<'static>,
) -> Option<Option<Lease>> {
    match sockets.get_mut::<dhcpv4::Socket>(handle).poll()? {
        dhcpv4::Event::Configured(c) => Some(Some(Lease {
            address: c.address,
            router: c.router,
            dns_servers: c.dns_servers.iter().copied().collect(),
        })),
        dhcpv4::Event::Deconfigured => Some(None),
    }
}

/// Set the interface's IPv4 address, default route and DNS servers from `lease`, or remove
/// them when it is `None` (lost). `worker`: the worker applying a lease published by worker 0,
/// or `None` for the stack whose socket took it (which logs it).
pub(crate) fn apply(
    iface: &mut Interface,
    learned: &mut Learned,
    config: &Config,
    lease: Option<&Lease>,
    worker: Option<usize>,
) {
    match lease {
        Some(l) => {
            match worker {
                None => log::info!(
                    "dhcp: address {}, router {:?}, dns {:?}",
                    l.address,
                    l.router,
                    l.dns_servers
                ),
                Some(k) => log::debug!("dhcp: worker {k} applies address {}", l.address),
            }
            set_ipv4(iface, Some(l.address));
            iface.routes_mut().remove_default_ipv4_route();
            if let Some(r) = l.router {
                let _ = iface.routes_mut().add_default_ipv4_route(r);
            }
            learned.gateway4 = l.router;
            learned.dns_servers = config.dns_servers.clone();
            for d in &l.dns_servers {
                if !learned.dns_servers.contains(&IpAddr::V4(*d)) {
                    learned.dns_servers.push(IpAddr::V4(*d));
                }
            }
        }
        None => {
            match worker {
                None => log::warn!("dhcp: lease lost, IPv4 deconfigured"),
                Some(k) => log::debug!("dhcp: worker {k} deconfigures IPv4"),
            }
            set_ipv4(iface, None);
            iface.routes_mut().remove_default_ipv4_route();
            learned.gateway4 = None;
            learned.dns_servers = config.dns_servers.clone();
        }
    }
}
