//! Typed configuration of a [`Stack`](crate::Stack): link address, IP addresses (static or
//! DHCPv4), gateways, DNS servers and TCP socket settings.
//!
//! Values are validated when the stack is built ([`Config::validate`]); the defaults are paf's
//! address plan for a TAP in a test namespace (198.18.0.2/24 and fd00:198:18::2/64, gateways
//! .1 and ::1).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// How the stack gets its IPv4 address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ipv4Setting {
    /// No IPv4.
    Disabled,
    /// A fixed address, prefix length and optional default gateway.
    Static {
        /// The address of the stack.
        addr: Ipv4Addr,
        /// Prefix length (0..=32).
        prefix: u8,
        /// Default gateway, if any.
        gateway: Option<Ipv4Addr>,
    },
    /// Address, gateway and DNS servers from a DHCPv4 server; the lease is renewed by the stack.
    Dhcp,
}

/// How the stack gets its IPv6 address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ipv6Setting {
    /// Only the link-local address derived from the MAC.
    Disabled,
    /// A fixed address, prefix length and optional default gateway.
    Static {
        /// The address of the stack.
        addr: Ipv6Addr,
        /// Prefix length (0..=128).
        prefix: u8,
        /// Default gateway, if any.
        gateway: Option<Ipv6Addr>,
    },
}

/// Settings applied to every TCP socket of the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Receive buffer per connection, bytes. Sets the advertised window (and window scaling).
    pub rx_buffer: usize,
    /// Send buffer per connection, bytes.
    pub tx_buffer: usize,
    /// Nagle's algorithm. Off by default: request/response traffic wants small writes sent now.
    pub nagle: bool,
    /// Delayed-ACK timeout; `None` acknowledges every segment at once.
    pub ack_delay: Option<Duration>,
    /// Give up on a connection when the peer has not acknowledged anything for this long.
    pub timeout: Option<Duration>,
    /// Send keep-alive probes after this much idle time.
    pub keep_alive: Option<Duration>,
    /// Lower bound of the retransmission timeout (RFC 6298 (2.4)). 200 ms by default, as on
    /// Linux; 10 ms to 60 s.
    pub min_rto: Duration,
    /// Socket sets the connections are spread over by a hash of their addresses and ports, so
    /// that an incoming segment is matched against one set only (smoltcp searches a set
    /// linearly). 1 disables sharding.
    pub shards: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            nagle: false,
            ack_delay: Some(Duration::from_millis(10)),
            timeout: Some(Duration::from_secs(300)),
            keep_alive: None,
            min_rto: Duration::from_millis(200),
            shards: 4096,
        }
    }
}

/// Configuration of a userspace stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Ethernet address of the stack; must be unicast.
    pub mac: [u8; 6],
    /// IPv4 addressing.
    pub ipv4: Ipv4Setting,
    /// IPv6 addressing.
    pub ipv6: Ipv6Setting,
    /// DNS servers (DHCP may add more).
    pub dns_servers: Vec<IpAddr>,
    /// TCP socket settings.
    pub tcp: TcpConfig,
    /// What a TAP's virtio-net header is asked to do (see [`Offload`]); ignored by other links.
    pub offload: Offload,
    /// Seed for smoltcp's initial sequence numbers and our ephemeral ports. `None`: from the clock
    /// and pid at construction (the one place the stack reads the system, because a repeated ISN
    /// across restarts breaks TCP).
    pub seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mac: [0x02, 0x00, 0xc6, 0x12, 0x00, 0x02],
            ipv4: Ipv4Setting::Static {
                addr: Ipv4Addr::new(198, 18, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(198, 18, 0, 1)),
            },
            ipv6: Ipv6Setting::Static {
                addr: "fd00:198:18::2".parse().expect("literal"),
                prefix: 64,
                gateway: Some("fd00:198:18::1".parse().expect("literal")),
            },
            dns_servers: Vec::new(),
            tcp: TcpConfig::default(),
            offload: Offload::Full,
            seed: None,
        }
    }
}

/// The work a TAP hands to the kernel through its virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Offload {
    /// TCP segmentation and checksums both ways: paf writes TCP segments of up to 64 KiB that
    /// the kernel cuts (TSO), and reads the kernel's super-segments uncut (falls back to
    /// [`Offload::Off`] when the kernel refuses the header).
    #[default]
    Full,
    /// Checksums only: every frame is one MTU-sized packet, as on a link with `ethtool -K tso
    /// off gso off gro off`, but neither side computes TCP checksums in software.
    Checksum,
    /// Plain frames of one MTU each way, checksums computed and verified by paf.
    Off,
}

/// A configuration value that cannot work, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, e.g. `ipv4.prefix`.
    pub field: &'static str,
    /// Why it is rejected.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Check the values that smoltcp would otherwise reject with a panic.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.mac[0] & 1 != 0 || self.mac == [0; 6] {
            return err("mac", "must be a unicast, non-zero Ethernet address");
        }
        if let Ipv4Setting::Static {
            addr,
            prefix,
            gateway,
        } = &self.ipv4
        {
            if *prefix > 32 {
                return err("ipv4.prefix", "must be at most 32");
            }
            if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
                return err("ipv4.addr", "must be a unicast address");
            }
            if gateway.is_some_and(|g| g.is_unspecified() || g.is_multicast()) {
                return err("ipv4.gateway", "must be a unicast address");
            }
        }
        if let Ipv6Setting::Static { addr, prefix, .. } = &self.ipv6 {
            if *prefix > 128 {
                return err("ipv6.prefix", "must be at most 128");
            }
            if addr.is_unspecified() || addr.is_multicast() {
                return err("ipv6.addr", "must be a unicast address");
            }
        }
        if self.tcp.rx_buffer < 1024 || self.tcp.tx_buffer < 1024 {
            return err("tcp.rx_buffer", "TCP buffers must be at least 1024 bytes");
        }
        if self.tcp.rx_buffer > (1 << 30) || self.tcp.tx_buffer > (1 << 30) {
            return err("tcp.rx_buffer", "TCP buffers must be at most 1 GiB");
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.tcp.min_rto) {
            return err("tcp.min_rto", "must be 10ms..=60s");
        }
        if !(1..=65536).contains(&self.tcp.shards) {
            return err("tcp.shards", "must be 1..=65536");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_uses_the_benchmark_range() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(
            c.ipv4,
            Ipv4Setting::Static {
                addr: Ipv4Addr::new(198, 18, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(198, 18, 0, 1))
            }
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.mac = [1, 0, 0, 0, 0, 1]), "mac"),
            (
                Box::new(|c| {
                    c.ipv4 = Ipv4Setting::Static {
                        addr: Ipv4Addr::new(198, 18, 0, 2),
                        prefix: 33,
                        gateway: None,
                    }
                }),
                "ipv4.prefix",
            ),
            (
                Box::new(|c| {
                    c.ipv4 = Ipv4Setting::Static {
                        addr: Ipv4Addr::UNSPECIFIED,
                        prefix: 24,
                        gateway: None,
                    }
                }),
                "ipv4.addr",
            ),
            (
                Box::new(|c| {
                    c.ipv6 = Ipv6Setting::Static {
                        addr: Ipv6Addr::UNSPECIFIED,
                        prefix: 64,
                        gateway: None,
                    }
                }),
                "ipv6.addr",
            ),
            (Box::new(|c| c.tcp.rx_buffer = 10), "tcp.rx_buffer"),
            (Box::new(|c| c.tcp.shards = 0), "tcp.shards"),
        ];
        for (mutate, field) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
    }
}
