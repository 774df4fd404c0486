//! Sharding of TCP sockets: smoltcp matches every incoming segment against every socket of the
//! set it is given, so one set of 10,000 connections costs 10,000 comparisons per packet. The
//! stack keeps several sets instead and hands each frame only the set its connection lives in,
//! chosen by a hash of (remote address, remote port, local port). Frames that are not TCP (ARP,
//! NDP, ICMP, UDP for DNS and DHCP) go to shard 0, which also holds the UDP sockets.

/// Shard of a TCP connection.
pub(crate) fn of(remote: &[u8], remote_port: u16, local_port: u16, shards: usize) -> usize {
    // FNV-1a over the tuple; good enough spread for ports and addresses, and cheap.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in remote
        .iter()
        .chain(&remote_port.to_be_bytes())
        .chain(&local_port.to_be_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % shards as u64) as usize
}

/// Shard of an Ethernet frame: its TCP connection's, or 0 for anything else (or unparseable).
pub(crate) fn of_frame(frame: &[u8], shards: usize) -> usize {
    if shards == 1 {
        return 0;
    }
    let Some((src, at)) = crate::device::tcp_segment(frame) else {
        return 0;
    };
    match frame.get(at..at + 4) {
        Some(p) => of(
            src,
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
            shards,
        ),
        None => 0,
    }
}

/// Whether a frame may teach the interface a neighbour (ARP, or ICMPv6 for NDP): sockets in any
/// shard may be waiting for that neighbour before they can send.
pub(crate) fn teaches_neighbours(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x06]) => true,
        Some([0x86, 0xdd]) => frame.get(20) == Some(&58),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn a_frame_lands_in_its_connections_shard() {
        for sport in [1u16, 80, 40000, 65535] {
            let f = ipv4_tcp([198, 18, 0, 1], sport, 80);
            assert_eq!(of_frame(&f, 32), of(&[198, 18, 0, 1], sport, 80, 32));
        }
        let mut v6 = vec![0u8; 14 + 40 + 20];
        v6[12] = 0x86;
        v6[13] = 0xdd;
        v6[20] = 6;
        let src = [0xfd, 0, 1, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        v6[22..38].copy_from_slice(&src);
        v6[54..56].copy_from_slice(&5555u16.to_be_bytes());
        v6[56..58].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(of_frame(&v6, 32), of(&src, 5555, 443, 32));
    }

    #[test]
    fn non_tcp_and_junk_go_to_shard_zero() {
        let mut udp = ipv4_tcp([1, 2, 3, 4], 53, 53);
        udp[23] = 17;
        assert_eq!(of_frame(&udp, 32), 0);
        assert_eq!(of_frame(&[0u8; 5], 32), 0);
        assert_eq!(of_frame(&ipv4_tcp([1, 2, 3, 4], 5, 6)[..36], 32), 0);
    }

    #[test]
    fn connections_spread_over_shards() {
        let mut counts = [0usize; 32];
        for port in 40000..42000u16 {
            counts[of(&[198, 18, 0, 1], port, 80, 32)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 30 && c < 100), "{counts:?}");
    }
}
