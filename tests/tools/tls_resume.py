#!/usr/bin/env python3
"""tls_resume.py HOST PORT CA NAME N: one TLS connection, then N more, each resuming the session
(ticket) the one before it got. Each connection sends GET / and reads the answer, so that the
TLS 1.3 tickets sent after the handshake are in. Prints one line per connection
(`conn K port P resumed yes|no version V`) and then `resumed R of N`. Exit 0 unless a
connection failed."""
import socket
import ssl
import sys


def main():
    host, port, ca, name, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    ctx = ssl.create_default_context(cafile=ca)
    session = None
    resumed = 0
    for k in range(n + 1):
        raw = socket.create_connection((host, port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname=name, session=session)
        s.sendall(b"GET / HTTP/1.1\r\nHost: " + name.encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            print(f"conn {k}: bad answer {data[:80]!r}")
            return 1
        reused = s.session_reused
        print(f"conn {k} port {s.getsockname()[1]} resumed {'yes' if reused else 'no'} version {s.version()}")
        if k > 0 and reused:
            resumed += 1
        session = s.session
        s.close()
    print(f"resumed {resumed} of {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
