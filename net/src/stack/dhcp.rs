//! DHCPv4 for the stack: smoltcp's DHCP client socket, whose events set the interface address,
//! the default route and the DNS servers. The socket itself renews the lease.

use std::net::{IpAddr, Ipv4Addr};

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpCidr, Ipv4Cidr};

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

pub(crate) fn poll(
    handle: SocketHandle,
    iface: &mut Interface,
    sockets: &mut SocketSet<'static>,
    learned: &mut Learned,
    config: &Config,
) {
    let event = match sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
        None => return,
        Some(dhcpv4::Event::Configured(c)) => Some((
            c.address,
            c.router,
            c.dns_servers.iter().copied().collect::<Vec<_>>(),
        )),
        Some(dhcpv4::Event::Deconfigured) => None,
    };
    match event {
        Some((address, router, dns)) => {
            log::info!("dhcp: address {address}, router {router:?}, dns {dns:?}");
            set_ipv4(iface, Some(address));
            iface.routes_mut().remove_default_ipv4_route();
            if let Some(r) = router {
                let _ = iface.routes_mut().add_default_ipv4_route(r);
            }
            learned.gateway4 = router;
            learned.dns_servers = config.dns_servers.clone();
            for d in dns {
                if !learned.dns_servers.contains(&IpAddr::V4(d)) {
                    learned.dns_servers.push(IpAddr::V4(d));
                }
            }
        }
        None => {
            log::warn!("dhcp: lease lost, IPv4 deconfigured");
            set_ipv4(iface, None);
            iface.routes_mut().remove_default_ipv4_route();
            learned.gateway4 = None;
            learned.dns_servers = config.dns_servers.clone();
        }
    }
}
