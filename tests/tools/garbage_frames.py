#!/usr/bin/env python3
"""Write malformed Ethernet frames into an interface with a packet socket (from the kernel side
of paf's TAP, so paf reads them): random bytes, truncated headers, lying length fields.
Deterministic (seeded). Prints how many frames were sent.

usage: garbage_frames.py IFACE DST_MAC COUNT
"""
import random
import socket
import struct
import sys


def frames(dst, src, count, rng):
    eth = lambda t: dst + src + struct.pack("!H", t)
    fixed = [
        b"",  # empty (the kernel may refuse it; skipped below)
        dst[:5],  # shorter than a MAC
        eth(0x0800),  # IPv4 ethertype, no header
        eth(0x0800) + bytes([0x4F]) + bytes(10),  # IHL 15, truncated
        eth(0x0800) + bytes([0x45, 0, 0xFF, 0xFF]) + bytes(16),  # total length lies
        eth(0x0800) + bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) +
        socket.inet_aton("198.18.0.1") + socket.inet_aton("198.18.0.2") + bytes(5),  # TCP cut
        eth(0x86DD) + bytes([0x60, 0, 0, 0, 0xFF, 0xFF, 6, 64]) + bytes(32),  # IPv6 length lies
        eth(0x86DD) + bytes([0x60, 0, 0, 0, 0, 8, 0, 64]) + bytes(32) + bytes(8),  # HBH junk
        eth(0x0806) + bytes(7),  # ARP truncated
        eth(0x0806) + bytes([0, 1, 8, 0, 6, 4, 0, 9]) + bytes(20),  # ARP bad opcode
        eth(0x8100) + bytes(4),  # VLAN tag, nothing behind
    ]
    for f in fixed:
        if len(f) >= 14:
            yield f
    for _ in range(count):
        kind = rng.randrange(3)
        n = rng.randrange(0, 1500)
        body = bytes(rng.getrandbits(8) for _ in range(n))
        if kind == 0:
            yield dst + src + body if n >= 2 else dst + src + b"\x08\x00"
        elif kind == 1:
            yield eth(0x0800) + bytes([0x45]) + body
        else:
            yield eth(0x86DD) + bytes([0x60]) + body


def main():
    iface, mac, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dst = bytes(int(x, 16) for x in mac.split(":"))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src = s.getsockname()[4][:6]
    rng = random.Random(1234)
    sent = 0
    for f in frames(dst, src, count, rng):
        try:
            s.send(f)
            sent += 1
        except OSError:
            pass
    print(f"sent {sent}")
    return 0 if sent > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
