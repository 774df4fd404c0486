#!/usr/bin/env python3
"""Check, from a pcap file (Ethernet, IPv4), what a TCP echo server sent back on each connection
to tcp_burst.py: connection i sends f"{i:08d}" repeated to PAYLOAD_BYTES, so the server's byte
stream on each flow must be its first 8 bytes repeated to that length. Segments are placed by
sequence number (from the server's SYN-ACK), so a retransmission is harmless and a missing or
altered byte is not. Flows that carried no payload (a harness's readiness probe) are left out.
Prints `ok FLOWS` (FLOWS: the flows checked), or the failures and exits 1.

usage: pcap_echo_check.py PCAP SERVER_IP SERVER_PORT PAYLOAD_BYTES
"""
import ipaddress
import struct
import sys


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        end = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        end = ">"
    else:
        raise SystemExit(f"{path}: not a pcap file")
    link = struct.unpack(end + "I", data[20:24])[0]
    if link != 1:
        raise SystemExit(f"{path}: link type {link}, not Ethernet")
    at = 24
    while at + 16 <= len(data):
        incl = struct.unpack(end + "I", data[at + 8:at + 12])[0]
        yield data[at + 16:at + 16 + incl]
        at += 16 + incl


def main():
    path, server, port, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    server = ipaddress.ip_address(server).packed
    flows = {}  # client port -> {"isn": int, "bytes": bytearray, "have": bytearray}
    for f in frames(path):
        if len(f) < 34 or f[12:14] != b"\x08\x00" or f[23] != 6 or f[26:30] != server:
            continue
        ihl = (f[14] & 0x0F) * 4
        total = struct.unpack("!H", f[16:18])[0]
        tcp = f[14 + ihl:14 + total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        if sport != port:
            continue
        flags = tcp[13]
        payload = tcp[(tcp[12] >> 4) * 4:]
        flow = flows.setdefault(dport, {"isn": None, "bytes": bytearray(size),
                                        "have": bytearray(size)})
        if flags & 0x02:  # SYN
            flow["isn"] = seq
            continue
        if flow["isn"] is None or not payload:
            continue
        off = (seq - flow["isn"] - 1) % (1 << 32)
        if off + len(payload) > size:
            print(f"flow {dport}: {len(payload)} bytes at {off}, past the {size} echoed")
            return 1
        flow["bytes"][off:off + len(payload)] = payload
        flow["have"][off:off + len(payload)] = b"\x01" * len(payload)
    failures = []
    flows = {p: f for p, f in flows.items() if f["have"].count(1)}
    for dport, flow in sorted(flows.items()):
        if flow["isn"] is None:
            failures.append(f"flow {dport}: no SYN-ACK captured")
            continue
        missing = flow["have"].count(0)
        want = (bytes(flow["bytes"][:8]) * (size // 8 + 1))[:size]
        if missing:
            failures.append(f"flow {dport}: {missing} of {size} bytes not captured")
        elif bytes(flow["bytes"]) != want:
            failures.append(f"flow {dport}: the captured bytes differ from the echo")
    if failures or not flows:
        print("\n".join(failures) or "no payload from the server")
        return 1
    print(f"ok {len(flows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
