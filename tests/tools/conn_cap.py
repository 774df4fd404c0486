"""Many connections from one client at once, for the per-client limits.

    conn_cap.py HOST PORT N [GO_FILE [MORE]]
opens N connections to HOST:PORT at once (each from its own source port), waits for the
server to accept or reset each one, then sends one `GET /hello` on every one (keep-alive) and
keeps those that are answered; prints `held=K limited=L`: K answers `200`, L answers `429`
(the connections reset or closed get neither). With GO_FILE it then holds them until that
file exists (up to 60 s), opens MORE more (default N) the same way while holding the first
ones, and prints `more=M` (their `200`s). Every connection is closed at the end.
"""
import os
import socket
import sys
import time

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
go = sys.argv[4] if len(sys.argv) > 4 else None
more_n = int(sys.argv[5]) if len(sys.argv) > 5 else n
family = socket.AF_INET6 if ":" in host else socket.AF_INET


def answer(s):
    """The status of the answer to GET /hello on `s`, or None if reset or closed."""
    try:
        s.setblocking(True)
        s.settimeout(5)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: w\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                return None
            body += chunk
        return int(lines[0].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def open_many(k):
    socks = []
    for _ in range(k):
        s = socket.socket(family)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
    # Every handshake done and every reset in before the first request: nothing closes
    # before the server has decided on all of them.
    time.sleep(1.5)
    kept, codes = [], {}
    for s in socks:
        code = answer(s)
        if code is None:
            s.close()
            continue
        kept.append(s)
        codes[code] = codes.get(code, 0) + 1
    return kept, codes


held, codes = open_many(n)
print(f"held={codes.get(200, 0)} limited={codes.get(429, 0)}", flush=True)
if go:
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)
    if more_n > 0:
        more, codes = open_many(more_n)
        print(f"more={codes.get(200, 0)}", flush=True)
        for s in more:
            s.close()
for s in held:
    s.close()
