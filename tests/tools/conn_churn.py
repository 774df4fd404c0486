#!/usr/bin/env python3
"""N sequential short HTTP connections: connect, `GET PATH` with `Connection: close`, read to EOF,
expect status 200. Counts refused/reset/failed connections and bad answers; prints
`ok N rate=R/s` or the failures. Bounded by TIMEOUT_S overall.

With LOCAL_PORT, every connection is made from that one port (SO_REUSEADDR): the server closes
first, so each new SYN meets the server's previous connection of the same four-tuple in TIME-WAIT.

usage: conn_churn.py HOST PORT N [PATH] [TIMEOUT_S] [LOCAL_PORT]
"""
import errno
import socket
import sys
import time


def reuse_port_connect(s, family, host, port, local_port):
    """Connect from `local_port`, waiting (1 s at most) while our previous socket of the same
    four-tuple is still finishing its close (LAST-ACK): the kernel refuses the tuple until then."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", local_port))
            s.connect((host, port))
            return s
        except OSError as e:
            if e.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) or time.monotonic() > deadline:
                raise
            s.close()
            time.sleep(0.001)
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(5)


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/health"
    limit = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
    local_port = int(sys.argv[6]) if len(sys.argv) > 6 else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    req = f"GET {path} HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\n".encode()
    failures = {}
    ok = 0
    start = time.monotonic()
    for i in range(n):
        if time.monotonic() - start > limit:
            failures["time limit"] = n - i
            break
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            if local_port is not None:
                s = reuse_port_connect(s, family, host, port, local_port)
            else:
                s.connect((host, port))
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                failures["bad answer"] = failures.get("bad answer", 0) + 1
        except OSError as e:
            key = type(e).__name__
            failures[key] = failures.get(key, 0) + 1
        finally:
            s.close()
    secs = time.monotonic() - start
    if failures:
        print(f"failed {failures} ok {ok} in {secs:.1f}s")
        return 1
    print(f"ok {ok} rate={ok / secs:.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
