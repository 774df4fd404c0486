#!/usr/bin/env python3
"""N sequential short HTTP connections: connect, `GET PATH` with `Connection: close`, read to EOF,
expect status 200. Counts refused/reset/failed connections and bad answers; prints
`ok N rate=R/s` or the failures. Bounded by TIMEOUT_S overall.

usage: conn_churn.py HOST PORT N [PATH] [TIMEOUT_S]
"""
import socket
import sys
import time


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/health"
    limit = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
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
