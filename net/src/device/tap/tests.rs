//! Tests of the TAP's offload headers and checksums.

use super::*;

/// An Ethernet + IPv4 + TCP frame with `payload` bytes, addresses 198.18.0.2 → 198.18.0.1.
pub(crate) fn ipv4_tcp(payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + payload];
    f[12] = 0x08;
    f[14] = 0x45;
    let total = (20 + 20 + payload) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[23] = 6;
    f[26..30].copy_from_slice(&[198, 18, 0, 2]);
    f[30..34].copy_from_slice(&[198, 18, 0, 1]);
    f[34 + 12] = 5 << 4;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

/// Full TCP checksum over pseudo header + segment, as a receiver verifies it.
pub(crate) fn verify(frame: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let seg = &frame[34..];
    for c in [
        &frame[26..34],
        &[0, 6][..],
        &(seg.len() as u16).to_be_bytes()[..],
        seg,
    ] {
        for p in c.chunks(2) {
            sum += (u32::from(p[0]) << 8) | u32::from(*p.get(1).unwrap_or(&0));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn the_kernel_completing_our_partial_checksum_gives_a_valid_one() {
    let mut f = ipv4_tcp(1001);
    let mut hdr = [0u8; VNET_HDR];
    vnet_header(&mut hdr, &mut f, None);
    assert_eq!(hdr[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert_eq!(hdr[1], VIRTIO_NET_HDR_GSO_NONE);
    let start = u16::from_le_bytes([hdr[6], hdr[7]]) as usize;
    let off = u16::from_le_bytes([hdr[8], hdr[9]]) as usize;
    assert_eq!((start, off), (34, 16));
    // What the kernel does: sum from csum_start (the field holds the pseudo sum), fold,
    // complement, store.
    let mut sum: u32 = 0;
    for p in f[start..].chunks(2) {
        sum += (u32::from(p[0]) << 8) | u32::from(*p.get(1).unwrap_or(&0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(sum as u16);
    f[start + off..start + off + 2].copy_from_slice(&csum.to_be_bytes());
    assert_eq!(verify(&f), 0, "a receiver accepts the completed checksum");
}

#[test]
fn a_partial_checksum_from_the_kernel_is_completed_like_the_kernel_would() {
    // Odd and even payload lengths, small and super-segment sized.
    for payload in [0, 1, 1001, 1460, 65_000] {
        let mut f = ipv4_tcp(payload);
        let mut hdr = [0u8; VNET_HDR];
        // The kernel's partial form is the same as ours on send: pseudo sum in the field.
        vnet_header(&mut hdr, &mut f, Some(1460));
        assert_ne!(
            verify(&f),
            0,
            "partial checksum is not yet valid ({payload})"
        );
        assert!(complete_checksum(&hdr, &mut f));
        assert_eq!(verify(&f), 0, "completed checksum verifies ({payload})");
    }
}

#[test]
fn a_frame_without_needs_csum_is_left_alone_and_a_bad_header_refused() {
    let mut f = ipv4_tcp(10);
    let copy = f.clone();
    assert!(complete_checksum(&[0; VNET_HDR], &mut f));
    assert_eq!(f, copy);
    // csum_start/offset pointing past the frame, or into the Ethernet header.
    let len = f.len() as u16;
    let mut past = [VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 0, 0, 16, 0];
    past[6..8].copy_from_slice(&(len - 10).to_le_bytes());
    assert!(!complete_checksum(&past, &mut f));
    let early = [VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 2, 0, 16, 0];
    assert!(!complete_checksum(&early, &mut f));
    let huge = [
        VIRTIO_NET_HDR_F_NEEDS_CSUM,
        0,
        0,
        0,
        0,
        0,
        0xff,
        0xff,
        0xff,
        0xff,
    ];
    assert!(!complete_checksum(&huge, &mut f));
    assert_eq!(f, copy, "a refused frame is not modified");
    // The check without the sum refuses the same headers.
    for bad in [past, early, huge] {
        assert!(!header_fits(&bad, f.len()));
    }
    assert!(header_fits(&[0; VNET_HDR], f.len()));
}

/// `f` with its TCP checksum filled in, as a sender computes it.
fn with_checksum(mut f: Vec<u8>) -> Vec<u8> {
    let mut hdr = [0u8; VNET_HDR];
    vnet_header(&mut hdr, &mut f, None);
    assert!(complete_checksum(&hdr, &mut f));
    f
}

#[test]
fn tcp_checksums_the_kernel_did_not_vouch_for_are_verified() {
    for payload in [0, 1, 1001, 1460] {
        let good = with_checksum(ipv4_tcp(payload));
        assert!(tcp_checksum_ok(&good), "{payload}");
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        assert!(!tcp_checksum_ok(&bad), "{payload}");
        // Ethernet padding after the IP packet is not part of the segment.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xaa; 6]);
        assert!(tcp_checksum_ok(&padded), "{payload}");
    }
    // IPv6: the same segment behind a 40-byte header, fd00:198:18::2 → ::1.
    let v4 = ipv4_tcp(100);
    let mut f = vec![0u8; 14 + 40];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&((v4.len() - 34) as u16).to_be_bytes());
    f[20] = 6;
    f[22..38].copy_from_slice(
        &"fd00:198:18::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    f[38..54].copy_from_slice(
        &"fd00:198:18::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    f.extend_from_slice(&v4[34..]);
    let good = with_checksum(f);
    assert!(tcp_checksum_ok(&good));
    let mut bad = good;
    bad[60] ^= 1;
    assert!(!tcp_checksum_ok(&bad));
    // Not TCP, or lengths that do not fit: left to smoltcp, and never a panic.
    assert!(tcp_checksum_ok(&[0u8; 60]));
    let whole = with_checksum(ipv4_tcp(10));
    for cut in 0..whole.len() {
        let _ = tcp_checksum_ok(&whole[..cut]);
    }
    let mut long = whole.clone();
    long[16..18].copy_from_slice(&9000u16.to_be_bytes());
    assert!(tcp_checksum_ok(&long));
}

#[test]
fn only_partial_or_verified_checksums_are_trusted() {
    assert!(!checksum_trusted(&[0; VNET_HDR]));
    assert!(checksum_trusted(&[
        VIRTIO_NET_HDR_F_NEEDS_CSUM,
        0,
        0,
        0,
        0,
        0,
        34,
        0,
        16,
        0
    ]));
    assert!(checksum_trusted(&[
        VIRTIO_NET_HDR_F_DATA_VALID,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0
    ]));
}

#[test]
fn large_segments_ask_for_segmentation() {
    let mut f = ipv4_tcp(30_000);
    let mut hdr = [0u8; VNET_HDR];
    vnet_header(&mut hdr, &mut f, Some(1460));
    assert_eq!(hdr[1], VIRTIO_NET_HDR_GSO_TCPV4);
    assert_eq!(u16::from_le_bytes([hdr[2], hdr[3]]), 54, "headers to copy");
    assert_eq!(u16::from_le_bytes([hdr[4], hdr[5]]), 1460);
    // A segment that fits needs no segmentation even when the stack allowed it.
    let mut small = ipv4_tcp(100);
    vnet_header(&mut hdr, &mut small, Some(1460));
    assert_eq!(hdr[1], VIRTIO_NET_HDR_GSO_NONE);
}

#[test]
fn other_frames_go_untouched() {
    let mut arp = vec![0u8; 42];
    arp[12] = 0x08;
    arp[13] = 0x06;
    let copy = arp.clone();
    let mut hdr = [9u8; VNET_HDR];
    vnet_header(&mut hdr, &mut arp, None);
    assert_eq!(hdr, [0; VNET_HDR]);
    assert_eq!(arp, copy);
}

#[test]
fn a_frame_sent_in_two_parts_gets_the_header_of_the_whole_frame() {
    // Payloads below and above one segment, with and without a segment size to cut at.
    for (payload, gso) in [(2048, None), (1460, Some(1460)), (65_000, Some(1460))] {
        let whole = ipv4_tcp(payload);
        let mut w = whole.clone();
        let mut want = [0u8; VNET_HDR];
        vnet_header(&mut want, &mut w, gso);
        let mut head = whole[..54].to_vec();
        let mut got = [0u8; VNET_HDR];
        vnet_header_for(&mut got, &mut head, whole.len(), gso);
        assert_eq!(got, want, "header for {payload} bytes");
        assert_eq!(head[..], w[..54], "pseudo-header sum for {payload} bytes");
        // And what the kernel completes from the two parts verifies.
        let mut sent = head.clone();
        sent.extend_from_slice(&whole[54..]);
        assert!(complete_checksum(&got, &mut sent));
        assert_eq!(verify(&sent), 0);
    }
    // A head too short for its TCP header, or longer than the frame, gets no offload.
    let mut head = ipv4_tcp(0)[..50].to_vec();
    let mut hdr = [1u8; VNET_HDR];
    vnet_header_for(&mut hdr, &mut head, 3000, None);
    assert_eq!(hdr, [0; VNET_HDR]);
    let mut head = ipv4_tcp(100);
    vnet_header_for(&mut hdr, &mut head, 60, None);
    assert_eq!(hdr, [0; VNET_HDR]);
}
