#!/usr/bin/env python3
"""One TCP stream, timed. `download`: connect and read until the server closes (paf echo
--mode source). `upload`: send BYTES then half-close and wait for the server to close (paf echo
--mode discard). Prints `bytes=N seconds=S gbit=G`.

usage: tcp_bulk.py download|upload HOST PORT BYTES
"""
import socket
import sys
import time


def main():
    mode, host, port, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(60)
    start = time.monotonic()
    s.connect((host, port))
    moved = 0
    if mode == "download":
        buf = bytearray(1 << 20)
        while True:
            n = s.recv_into(buf)
            if n == 0:
                break
            moved += n
    else:
        chunk = bytes(range(256)) * 4096
        while moved < total:
            moved += s.send(chunk[: min(len(chunk), total - moved)])
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    secs = time.monotonic() - start
    print(f"bytes={moved} seconds={secs:.3f} gbit={moved * 8 / secs / 1e9:.3f}")
    return 0 if moved >= total else 1


if __name__ == "__main__":
    sys.exit(main())
